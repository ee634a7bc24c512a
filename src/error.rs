//! Printing errors with their causes.
//!
//! Convention: an error's own message never repeats its source's text (the source is
//! returned by `source()`), so a message alone can lose the cause. Wherever an error is
//! shown to a person — a log field, the progress bar, `info --scrape` — print the whole
//! chain with [`error_chain`] (or `{:#}` for an `anyhow::Error`).

use std::error::Error;

/// `e` and each of its sources joined with `": "`, like anyhow's `{:#}`.
///
/// A cause whose text the line already ends with is skipped: a few third-party errors
/// still repeat their source in their own message.
pub fn error_chain(e: &dyn Error) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {0}")]
    struct Outer(&'static str, #[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("network error")]
    struct Middle(#[source] std::io::Error);

    fn sample() -> Outer {
        let io = std::io::Error::other("connection refused");
        Outer("a.bin", Middle(io))
    }

    #[test]
    fn joins_every_cause() {
        assert_eq!(
            error_chain(&sample()),
            "reading a.bin: network error: connection refused"
        );
    }

    #[test]
    fn a_lone_error_is_its_message() {
        let io = std::io::Error::other("disk full");
        assert_eq!(error_chain(&io), "disk full");
    }

    #[test]
    fn a_cause_already_printed_is_not_repeated() {
        // Breaks the convention on purpose, as some third-party errors do.
        #[derive(Debug, thiserror::Error)]
        #[error("failed: {0}")]
        struct Repeats(#[source] std::io::Error);
        let io = std::io::Error::other("disk full");
        assert_eq!(error_chain(&Repeats(io)), "failed: disk full");
    }
}
