//! What a service, or the connection to it, said (an Entra `error_description`, a Key Vault or
//! Storage error message, a reqwest error chain), made fit for one log line or one status field.
//!
//! Owns: shortening, and transport errors in words. Must not: interpret or classify messages
//! (each client does that for its own service), or drop what names the problem (the cut keeps
//! the start).

/// A service's message cut to at most `max` bytes at a word boundary (never inside a UTF-8
/// character), with `...` when something was cut.
pub fn shorten_message(message: &str, max: usize) -> String {
    let message = message.trim();
    if message.len() <= max {
        return message.to_string();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &message[..end];
    let cut = match cut.rfind(char::is_whitespace) {
        Some(space) if space > max / 2 => &cut[..space],
        _ => cut,
    };
    format!(
        "{}...",
        cut.trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == '.')
    )
}

/// A reqwest error in words, without URLs' query strings.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body broken"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        let cause = cause_in_words(&s.to_string());
        if !cause.is_empty() && !msg.contains(&cause) {
            msg.push_str(": ");
            msg.push_str(&cause);
        }
        src = s.source();
    }
    msg
}

/// One link of an error chain as an operator should read it: without the documentation links
/// rustls appends, and a connection closed mid-answer said in words.
fn cause_in_words(text: &str) -> String {
    let text = match text.find(": https://docs.rs/") {
        Some(i) => &text[..i],
        None => text,
    };
    if text.contains("close_notify") {
        "the server closed the connection without answering (no TLS close_notify)".into()
    } else {
        text.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_service_messages_are_cut_at_a_word_and_never_inside_a_character() {
        assert_eq!(shorten_message("  short  ", 300), "short");
        let long = "The user, group or application 'appid=1234' does not have keys unwrapKey permission on key vault 'contoso-kv'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287";
        let cut = shorten_message(long, 120);
        assert!(cut.len() <= 123, "{cut}");
        assert!(cut.ends_with("..."), "{cut}");
        assert!(long.starts_with(cut.trim_end_matches("...")), "{cut}");
        assert!(
            long[cut.len() - 3..].starts_with([' ', ',', '.']),
            "cut mid-word: {cut}"
        );
        // multi-byte characters across the limit: no panic, valid UTF-8
        let accents = "é".repeat(200);
        let cut = shorten_message(&accents, 301);
        assert!(cut.ends_with("...") && cut.len() <= 304, "{cut}");
    }

    #[test]
    fn error_chains_read_as_words() {
        assert_eq!(
            cause_in_words("peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof"),
            "the server closed the connection without answering (no TLS close_notify)"
        );
        assert_eq!(
            cause_in_words("Connection refused (os error 111)"),
            "Connection refused (os error 111)"
        );
    }
}
