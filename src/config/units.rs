//! Human units in the config: durations (`"90s"`, `"5m"`, `"1h30m"`) and sizes (`"50MiB"`, `"4KB"`).

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number with a unit: `ms`, `s`, `m`, `h`, `d`; parts may be chained (`1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }
    /// The inner duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Parses `"90s"`, `"5m"`, `"1h30m"`, `"250ms"`, `"0s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"60s\" or \"5m\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "not a valid duration: {text:?}; write e.g. \"60s\", \"5m\" or \"1h30m\""
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large in duration {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            "" => {
                return Err(format!(
                    "duration {text:?} has no unit; write e.g. \"{n}s\" or \"{n}m\""
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit {other:?} in duration {text:?}; use ms, s, m, h or d"
                ))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration the way the config writes it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration such as \"60s\", \"5m\" or \"1h30m\"")
        })? {
            Raw::Int(n) => Err(serde::de::Error::custom(format!(
                "a duration needs a unit and quotes: write \"{n}s\" or \"{n}m\""
            ))),
            Raw::Text(s) => parse_duration(&s)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> String {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut s = schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            ..Default::default()
        };
        s.string().pattern = Some("^([0-9]+(ms|s|m|h|d))+$".into());
        s.metadata().description = Some("A duration such as \"60s\", \"5m\" or \"1h30m\".".into());
        s.into()
    }
}

/// A size in bytes, written `"50MiB"`, `"4KB"`, `"1GiB"`, `"512B"` or as a plain integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024)
    }
    /// The number of bytes.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Parses `"50MiB"`, `"4KB"`, `"1GiB"`, `"512B"`, `"1024"`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if digits == 0 {
        return Err(format!(
            "not a valid size: {text:?}; write e.g. \"50MiB\" or \"4KB\""
        ));
    }
    let n: f64 = s[..digits]
        .parse()
        .map_err(|_| format!("not a valid size: {text:?}; write e.g. \"50MiB\""))?;
    let unit = s[digits..].trim();
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in size {text:?}; use B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    let v = n * mult as f64;
    if !v.is_finite() || v > u64::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(v as u64)
}

/// Formats a size the way the config writes it.
pub fn format_size(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n}B")
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a size such as \"50MiB\" or a number of bytes")
        })? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> String {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut s = schemars::schema::SchemaObject {
            instance_type: Some(
                vec![
                    schemars::schema::InstanceType::String,
                    schemars::schema::InstanceType::Integer,
                ]
                .into(),
            ),
            ..Default::default()
        };
        s.metadata().description =
            Some("A size such as \"50MiB\", \"4KB\" or a number of bytes.".into());
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_round_trip() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("60").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn sizes_parse_and_round_trip() {
        assert_eq!(parse_size("50MiB").unwrap(), 50 << 20);
        assert_eq!(parse_size("4KB").unwrap(), 4000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("4 furlongs").is_err());
        assert_eq!(format_size(64 << 20), "64MiB");
    }
}
