//! Tests of path templates and sanitising, including a randomised escape check.

use super::*;
use rand::{Rng, SeedableRng};
use time::macros::datetime;

const DEFAULT: &str = "tenant={tenant}/source={source}/date={yyyy}-{MM}-{dd}/hour={HH}/{name}";

fn ctx<'a>(tenant: &'a str, name: &'a str, offset: Option<u64>, ext: &'a str) -> NameContext<'a> {
    NameContext {
        tenant,
        tenant_id: "00000000-0000-0000-0000-000000000001",
        source: "audit",
        blob_name: name,
        blob_created: datetime!(2026-11-27 23:30:00 -02:00),
        blob_version: "0x8DCF1A2B3C4D5E6",
        start_offset: offset,
        ext,
    }
}

#[test]
fn default_template_renders_records_object_with_padded_offset() {
    let t = PathTemplate::parse(DEFAULT).unwrap();
    let name = "resourceId=/SUBSCRIPTIONS/AB-12/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1/y=2026/m=11/d=27/h=13/m=00/PT1H.json";
    let got = t.render(&ctx("contoso", name, Some(1_048_576), "jsonl.zst"));
    // Dates come from the blob's creation time in UTC (23:30 at -02:00 is 01:30 next day).
    assert_eq!(
        got,
        format!(
            "tenant=contoso/source=audit/date=2026-11-28/hour=01/{name}@{}.00000000000001048576.jsonl.zst",
            version_token("0x8DCF1A2B3C4D5E6")
        )
    );
}

#[test]
fn the_version_token_is_a_short_hash_of_the_version() {
    // the first 12 hex digits of SHA-256("0x8DCF1A2B3C4D5E6"), as `sha256sum` prints it
    assert_eq!(version_token("0x8DCF1A2B3C4D5E6"), "6ad93bb452f8");
    assert_eq!(
        version_token("created:Fri, 27 Nov 2026 13:00:00 GMT").len(),
        12
    );
}

#[test]
fn another_version_of_a_blob_never_gets_the_same_name() {
    let t = PathTemplate::parse(DEFAULT).unwrap();
    let first = ctx("c", "x/one.json", Some(65_536), "jsonl.zst");
    let rewritten = NameContext {
        blob_version: "0x8DCF1A2B3C4D5E7",
        ..first.clone()
    };
    // the same version: the same name on every poll and restart
    assert_eq!(t.render(&first), t.render(&first.clone()));
    assert_ne!(t.render(&first), t.render(&rewritten));
    // a whole-blob copy keeps the plain name: a new version replaces the object whole
    let copy = NameContext {
        start_offset: None,
        ext: "",
        ..first.clone()
    };
    let copy_rewritten = NameContext {
        start_offset: None,
        ext: "",
        ..rewritten
    };
    assert_eq!(t.render(&copy), t.render(&copy_rewritten));
}

#[test]
fn copy_mode_is_the_plain_sanitised_name() {
    let t = PathTemplate::parse(DEFAULT).unwrap();
    let got = t.render(&NameContext {
        tenant: "contoso",
        tenant_id: "tid",
        source: "audit",
        blob_name: "dir/file.bin",
        blob_created: datetime!(2026-01-02 03:04:05 UTC),
        blob_version: "0x1",
        start_offset: None,
        ext: "",
    });
    assert_eq!(
        got,
        "tenant=contoso/source=audit/date=2026-01-02/hour=03/dir/file.bin"
    );
}

#[test]
fn explicit_offset_version_and_ext_placeholders() {
    let t = PathTemplate::parse("{tenant_id}/{source}/{name}/{version}-{offset}.{ext}").unwrap();
    let v = version_token("0x8DCF1A2B3C4D5E6");
    let got = t.render(&ctx("c", "a.json", Some(42), "jsonl"));
    assert_eq!(
        got,
        format!("00000000-0000-0000-0000-000000000001/audit/a.json/{v}-00000000000000000042.jsonl")
    );
    let copy = t.render(&ctx("c", "a.json", None, ""));
    assert_eq!(
        copy,
        format!("00000000-0000-0000-0000-000000000001/audit/a.json/{v}-00000000000000000000.")
    );
}

#[test]
fn an_offset_without_a_version_is_refused() {
    let err = PathTemplate::parse("{tenant}/{source}/{name}/{offset}.{ext}").unwrap_err();
    assert!(
        err.to_string().contains("has {offset} without {version}"),
        "{err}"
    );
    assert!(PathTemplate::parse("{tenant}/{source}/{name}@{version}").is_ok());
}

#[test]
fn same_input_same_name_different_offsets_differ() {
    let t = PathTemplate::parse(DEFAULT).unwrap();
    let a = t.render(&ctx("c", "x/PT1H.json", Some(0), "jsonl.zst"));
    let b = t.render(&ctx("c", "x/PT1H.json", Some(0), "jsonl.zst"));
    let c = t.render(&ctx("c", "x/PT1H.json", Some(1), "jsonl.zst"));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn tenants_never_collide() {
    let t = PathTemplate::parse(DEFAULT).unwrap();
    let names = [
        "a",
        "../t2/a",
        "x/../../tenant=t2/source=audit/a",
        "..\\..\\a",
    ];
    let tenants = ["t1", "t2", "t1/source=audit", "t%31"];
    let mut all = std::collections::HashSet::new();
    for tenant in tenants {
        for name in names {
            let got = t.render(&ctx(tenant, name, Some(0), "jsonl"));
            let prefix = t.render_prefix(&ctx(tenant, name, Some(0), "jsonl"));
            assert!(got.starts_with(&prefix), "{got} outside {prefix}");
            assert!(all.insert(got.clone()), "collision: {got}");
        }
    }
    // A tenant name with a slash stays one segment.
    let got = t.render(&ctx("t1/source=audit", "a", None, ""));
    assert!(
        got.starts_with("tenant=t1%2Fsource=audit/source=audit/"),
        "{got}"
    );
}

#[test]
fn sanitize_cases() {
    assert_eq!(sanitize_blob_name("a/b c/d.json"), "a/b%20c/d.json");
    assert_eq!(
        sanitize_blob_name("../../etc/passwd"),
        "%2E%2E/%2E%2E/etc/passwd"
    );
    assert_eq!(sanitize_blob_name("a\\..\\b"), "a/%2E%2E/b");
    assert_eq!(sanitize_blob_name("/abs//x/./"), "~/abs/~/x/%2E/~");
    assert_eq!(sanitize_blob_name("100%\n\t"), "100%25%0A%09");
    assert_eq!(sanitize_blob_name("é~"), "%C3%A9%7E");
    assert_eq!(sanitize_blob_name(""), "~");
    // Distinct inputs stay distinct.
    let inputs = [
        "a//b", "a/~/b", "a/%7E/b", "a/./b", "a/%2E/b", "a/../b", "a/...",
    ];
    let outs: std::collections::HashSet<String> =
        inputs.iter().map(|n| sanitize_blob_name(n)).collect();
    assert_eq!(outs.len(), inputs.len(), "{outs:?}");
}

#[test]
fn overlong_names_are_cut_with_a_hash_and_stay_distinct() {
    let a = "x".repeat(3000);
    let b = format!("{}y", "x".repeat(2999));
    let sa = sanitize_blob_name(&a);
    let sb = sanitize_blob_name(&b);
    assert_eq!(sa.len(), AZURE_BLOB_NAME_MAX);
    assert_ne!(sa, sb);
    // Never cut inside an escape.
    let c = "é".repeat(1000);
    let sc = sanitize_blob_name(&c);
    assert!(sc.len() <= AZURE_BLOB_NAME_MAX);
    let body = sc.rsplit_once('~').unwrap().0;
    assert!(body.len().is_multiple_of(3), "cut inside an escape: {body}");
    // Whole rendered names stay within Azure's limit.
    let t = PathTemplate::parse(DEFAULT).unwrap();
    let got = t.render(&ctx("contoso", &c, Some(7), "jsonl.zst"));
    assert!(got.len() <= AZURE_BLOB_NAME_MAX, "{}", got.len());
    // Too many segments fold into the last one.
    let deep = "d/".repeat(400);
    let sd = sanitize_blob_name(&deep);
    assert!(sd.split('/').count() <= 200, "{}", sd.split('/').count());
}

#[test]
fn template_errors_are_config_validations_and_name_the_column() {
    let refused = |t: &str| PathTemplate::parse(t).unwrap_err().to_string();
    for (template, expected) in [
        (
            "{tenant}/{source}/{nmae}",
            "unknown placeholder {nmae} at column 19; did you mean {name}?",
        ),
        (
            "{tenant}/{source}/{name",
            "'{' at column 19 that is never closed",
        ),
        ("{tenant}}/{source}/{name}", "'}' at column 9 without a '{'"),
        ("ü{x}", "unknown placeholder {x} at column 2"),
        ("{tenant}/../{source}/{name}", "'..' segment"),
        ("{tenant}\\.\\{source}/{name}", "'.' or '..' segment"),
        ("/{tenant}/{source}/{name}", "starts with '/'"),
        ("{tenant}//{source}/{name}", "empty"),
        (
            "{source}/{name}",
            "does not contain {tenant} (or {tenant_id})",
        ),
        ("{tenant}/{name}", "does not contain {source}"),
        ("{tenant}/{source}", "does not contain {name}"),
        (
            "{name}/{tenant}/{source}",
            "has {name} before {tenant} and {source}",
        ),
        (
            "{tenant}{source}/{name}",
            "{tenant} is followed by something a name can contain",
        ),
    ] {
        let got = refused(template);
        assert!(got.contains(expected), "{template}: {got}");
        // the same words `ferry validate` prints first
        let first = &crate::config::check_template(template)[0];
        assert_eq!(got, format!("{}; {}", first.message, first.help));
    }
}

#[test]
fn every_placeholder_validation_knows_is_one_naming_renders() {
    for p in crate::config::TEMPLATE_PLACEHOLDERS {
        let t = format!("{{tenant}}/{{source}}/{{{p}}}/{{name}}@{{version}}.{{offset}}");
        assert!(
            PathTemplate::parse(&t).is_ok(),
            "{p}: {:?}",
            PathTemplate::parse(&t)
        );
    }
}

/// A random name from characters that stress sanitising.
fn random_name(rng: &mut impl Rng) -> String {
    const PIECES: &[&str] = &[
        "/", "\\", ".", "..", "%", "%2E", "~", "a", "Z", "9", "=", "-", "_", " ", "\n", "\0", "é",
        "日", "?", "#", "{", "}", "@", "//", "../", "..\\", "\u{7f}", "%2F",
    ];
    let len = rng.gen_range(0..40);
    let mut s = String::new();
    for _ in 0..len {
        s.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
    }
    if rng.gen_ratio(1, 20) {
        s.push_str(&"../x".repeat(rng.gen_range(100..400)));
    }
    s
}

#[test]
fn random_names_never_escape_their_prefix() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let templates = [
        DEFAULT,
        "{tenant}/{source}/{name}",
        "{tenant_id}/x{source}_y/{yyyy}/{name}.{version}.{offset}.{ext}",
    ];
    for template in templates {
        let t = PathTemplate::parse(template).unwrap();
        for _ in 0..3000 {
            let name = random_name(&mut rng);
            let offset = rng.gen_bool(0.5).then(|| rng.gen());
            let c = ctx("contoso", &name, offset, "jsonl.zst");
            let prefix = t.render_prefix(&c);
            let got = t.render(&c);
            assert!(
                got.starts_with(&prefix),
                "{name:?} -> {got} outside {prefix}"
            );
            assert!(
                got.len() <= AZURE_BLOB_NAME_MAX,
                "{name:?} -> {} chars",
                got.len()
            );
            for seg in got.split('/') {
                assert!(
                    !seg.is_empty() && seg != "." && seg != "..",
                    "{name:?} -> {got} has segment {seg:?}"
                );
            }
            assert!(
                got.bytes().all(|b| b.is_ascii_graphic()),
                "{name:?} -> {got} has a non-printable byte"
            );
        }
    }
}

#[test]
fn random_distinct_names_stay_distinct() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut seen = std::collections::HashMap::new();
    for _ in 0..20000 {
        let name = random_name(&mut rng).replace('\\', "/");
        let s = sanitize_blob_name(&name);
        if let Some(prev) = seen.insert(s.clone(), name.clone()) {
            assert_eq!(prev, name, "two names map to {s}");
        }
    }
}

#[test]
fn a_watermark_sits_in_the_folder_of_its_tenant_and_source() {
    let at = |template: &str| {
        PathTemplate::parse(template).unwrap().watermark_name(
            "contoso",
            "00000000-0000-0000-0000-000000000001",
            "audit",
        )
    };
    assert_eq!(
        at(DEFAULT),
        "tenant=contoso/source=audit/_ferry~watermark.json"
    );
    assert_eq!(
        at("logs/{tenant_id}/{source}/{yyyy}/{name}"),
        "logs/00000000-0000-0000-0000-000000000001/audit/_ferry~watermark.json"
    );
    // the folder ends at the last '/' before the first date or per-object placeholder
    assert_eq!(
        at("{tenant}/{source}/x-{yyyy}/{name}"),
        "contoso/audit/_ferry~watermark.json"
    );
    // no folder that is the source's alone: a name after `{source}_`, a date before the source
    assert_eq!(
        at("{tenant}/{source}_{name}"),
        "_ferry~watermarks/contoso/audit/_ferry~watermark.json"
    );
    assert_eq!(
        at("{tenant}/{yyyy}/{source}/{name}"),
        "_ferry~watermarks/contoso/audit/_ferry~watermark.json"
    );
}

#[test]
fn no_shipped_object_is_named_like_a_watermark() {
    let t = PathTemplate::parse("{tenant}/{source}/{name}").unwrap();
    let marker = t.watermark_name("contoso", "t", "audit");
    for blob in [
        "_ferry~watermark.json",
        "_ferry%7Ewatermark.json",
        "a/../_ferry~watermark.json",
        "/_ferry~watermark.json",
    ] {
        for offset in [None, Some(0)] {
            let got = t.render(&ctx("contoso", blob, offset, ""));
            assert_ne!(got, marker, "{blob}");
        }
    }
    let long = format!("{}_ferry~watermark.json", "x".repeat(2000));
    assert_ne!(t.render(&ctx("contoso", &long, None, "")), marker);
}
