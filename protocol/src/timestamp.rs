//! The legacy report timestamp, `%Y%m%d%H%M%S+0000` in UTC, at 1-second resolution.

use time::{
    format_description::FormatItem, macros::format_description, OffsetDateTime, PrimitiveDateTime,
};

const LEGACY_FORMAT: &[FormatItem<'static>] =
    format_description!("[year][month][day][hour][minute][second]+0000");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("timestamp must look like 20200210121530+0000 (UTC, %Y%m%d%H%M%S+0000)")]
    Malformed,
    #[error("timestamp is out of range")]
    OutOfRange,
}

/// Formats Unix seconds as a legacy timestamp.
pub fn format_legacy(unix_secs: i64) -> Result<String, TimestampError> {
    let t =
        OffsetDateTime::from_unix_timestamp(unix_secs).map_err(|_| TimestampError::OutOfRange)?;
    if !(0..=9999).contains(&t.year()) {
        return Err(TimestampError::OutOfRange);
    }
    t.format(LEGACY_FORMAT)
        .map_err(|_| TimestampError::OutOfRange)
}

/// Parses a legacy timestamp into Unix seconds.
pub fn parse_legacy(s: &str) -> Result<i64, TimestampError> {
    // The fixed width is checked first, so oversized or odd input never reaches the parser.
    if s.len() != 19 || !s.ends_with("+0000") || !s[..14].bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::Malformed);
    }
    let t = PrimitiveDateTime::parse(s, LEGACY_FORMAT).map_err(|_| TimestampError::Malformed)?;
    Ok(t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_cloudify_example() {
        let secs = parse_legacy("20200210121530+0000").unwrap();
        assert_eq!(secs, 1_581_336_930);
        assert_eq!(format_legacy(secs).unwrap(), "20200210121530+0000");
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "",
            "2020021012153+0000",
            "20200210121530+0100",
            "20201310121530+0000",
            "20200230121530+0000",
            "2020-02-10T12:15:30Z",
            "20200210121530+0000 ",
            "2020021012153é+0000",
        ] {
            assert!(parse_legacy(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
