//! Dates as the pages write and read them. Written out by hand rather than
//! through chrono's `format` and `parse_from_str`: those interpret a
//! strftime pattern at run time, and their interpreter and parser were 40%
//! of chrono's code in the browser's WASM bundle (37.7 KB before wasm-opt,
//! 22.2 KB without them; what is left parses the model's dates).

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// `2026-03-04`.
pub fn day(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}-{:02}", at.year(), at.month(), at.day())
}

/// `2026-03-04 05:06`.
pub fn minute(at: DateTime<Utc>) -> String {
    format!("{} {:02}:{:02}", day(at), at.hour(), at.minute())
}

/// `2026-03-04 05:06:07 UTC`. The server writes it too (VSS's ISOs), a
/// time for each of a page's rows: one `format!`, no string built to be
/// copied into another.
pub fn second(at: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A day written `YYYY-MM-DD` (month and day may have one digit), or
/// nothing for anything else, an impossible day (`2026-02-30`) included.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let mut parts = text.split('-');
    let mut number = |most_digits: usize| {
        parts
            .next()
            .filter(|part| (1..=most_digits).contains(&part.len()))
            .filter(|part| part.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|part| part.parse::<u32>().ok())
    };
    let (year, month, day) = (number(4)?, number(2)?, number(2)?);
    if parts.next().is_some() {
        return None;
    }
    NaiveDate::from_ymd_opt(year as i32, month, day)
}

/// Reads a time as the server writes it, for the model's times in the
/// browser (`#[cfg_attr(feature = "hydrate", serde(with = ...))]`), and
/// writes it as chrono does. chrono's own `Deserialize` takes looser forms
/// too, through its general parser, which the bundle would then carry; the
/// server writes RFC 3339, which chrono's dedicated parser reads. The server
/// keeps chrono's reading.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, to: S) -> Result<S::Ok, S::Error> {
        at.serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(from)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }

    /// The same for a time that may be missing (`null`).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<S: Serializer>(
            at: &Option<DateTime<Utc>>,
            to: S,
        ) -> Result<S::Ok, S::Error> {
            at.serialize(to)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            from: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct At(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<At>::deserialize(from)?.map(|At(at)| at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_read_as_chrono_would_write_them() {
        for at in [
            Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap(),
            Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(987, 1, 1, 0, 0, 0).unwrap(),
        ] {
            assert_eq!(day(at), at.format("%Y-%m-%d").to_string());
            assert_eq!(minute(at), at.format("%Y-%m-%d %H:%M").to_string());
            assert_eq!(second(at), at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        }
    }

    #[test]
    fn days_parse_as_chrono_would_parse_them() {
        for text in [
            "2026-03-04",
            "2026-3-4",
            "1970-01-01",
            "9999-12-31",
            "2024-02-29",
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-01-32",
            "2026-01",
            "2026-01-02-03",
            "",
            "-",
            "2026--01",
            "2026-01-02 ",
            "2026-001-02",
            "２０２６-01-02",
            "abcd-01-02",
        ] {
            assert_eq!(
                parse_day(text),
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .filter(|day| (0..=9999).contains(&day.year())),
                "{text:?}"
            );
        }
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Times {
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
        #[serde(default, with = "rfc3339::option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[test]
    fn times_are_read_back_as_chrono_writes_them() {
        let second = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        for at in [
            second,
            second + chrono::Duration::nanoseconds(123_456_789),
            second + chrono::Duration::microseconds(5),
            Utc.with_ymd_and_hms(987, 1, 1, 0, 0, 0).unwrap(),
        ] {
            // What the server sends: chrono's own `Serialize`.
            let written = serde_json::to_value(at).unwrap();
            let read: Times =
                serde_json::from_value(serde_json::json!({ "at": written, "maybe": written }))
                    .unwrap();
            assert_eq!((read.at, read.maybe), (at, Some(at)), "{written}");
            // Written back as chrono writes it.
            let again = serde_json::to_value(&read).unwrap();
            assert_eq!(
                again,
                serde_json::json!({ "at": written, "maybe": written })
            );
        }
        let written = serde_json::to_value(second).unwrap();
        for times in [
            serde_json::json!({ "at": written, "maybe": null }),
            serde_json::json!({ "at": written }),
        ] {
            let read: Times = serde_json::from_value(times).unwrap();
            assert_eq!((read.at, read.maybe), (second, None));
        }
        // An offset is taken and turned into UTC, as chrono's reading does.
        let read: Times =
            serde_json::from_value(serde_json::json!({ "at": "2026-03-04T07:06:07+02:00" }))
                .unwrap();
        assert_eq!(read.at, second);
        for bad in ["2026-03-04", "yesterday", "2026-02-30T00:00:00Z", ""] {
            let read = serde_json::from_value::<Times>(serde_json::json!({ "at": bad }));
            assert!(read.is_err(), "{bad:?} read as {read:?}");
        }
    }
}
