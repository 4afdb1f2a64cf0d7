//! How much one catalog query may ask, whichever dialect wrote it: its
//! conditions, their nesting, the values it binds, their length, its sort
//! keys and its regular expressions. Each condition is work at every row the
//! caller may read, and each value a bound parameter: past SQLite's 32,766
//! or PostgreSQL's 65,535 parameters, or SQLite's expression depth of 1000
//! (`a OR b OR …` nests one level a term), the database refuses the
//! statement, which would reach the caller as the server's failure (500)
//! instead of theirs (400). The dialects keep their own tighter budgets
//! where their documents set them (VSS's filters); these hold for all.

use app::error::CoreError;
use app::query::{Condition, Sort, Value};
use chrono::Datelike;

/// The most conditions one query may hold, counting every `AND` and `OR`,
/// even an empty one (each is still SQL).
const MAX_CONDITIONS: usize = 512;

/// How deep `AND` and `OR` may nest.
const MAX_DEPTH: usize = 16;

/// The most values one query binds: each item of an `in` list is one.
const MAX_VALUES: usize = 4096;

/// The longest text value, in bytes: room for a whole description (4000
/// characters of up to four bytes each).
const MAX_VALUE_BYTES: usize = 16_000;

/// The most text all of a query's values may hold together, in bytes.
const MAX_TEXT_BYTES: usize = 64 << 10;

/// The most keys one sort may hold.
const MAX_SORT_KEYS: usize = 8;

/// Refuses a query that asks more than the bounds above, or whose regular
/// expressions are too many, too costly or outside what both backends read
/// alike.
pub(super) fn check_query(condition: &Condition, sort: &[Sort]) -> Result<(), CoreError> {
    if sort.len() > MAX_SORT_KEYS {
        return Err(CoreError::invalid(format!(
            "a query may sort by at most {MAX_SORT_KEYS} keys, not {}",
            sort.len()
        )));
    }
    check_condition(condition)?;
    // After the depth is known to be bounded: the pattern check recurses.
    super::patterns::check_patterns(condition)
}

/// What a condition tree holds, counted without recursion.
fn check_condition(condition: &Condition) -> Result<(), CoreError> {
    let mut conditions = 0;
    let mut values = Tally::default();
    let mut pending = vec![(condition, 1)];
    while let Some((condition, depth)) = pending.pop() {
        conditions += 1;
        if conditions > MAX_CONDITIONS {
            return Err(CoreError::invalid(format!(
                "a query may hold at most {MAX_CONDITIONS} conditions"
            )));
        }
        if depth > MAX_DEPTH {
            return Err(CoreError::invalid(format!(
                "conditions may nest at most {MAX_DEPTH} levels deep"
            )));
        }
        match condition {
            Condition::All(items) | Condition::Any(items) => {
                pending.extend(items.iter().map(|item| (item, depth + 1)));
            }
            Condition::Compare { value, .. } => values.add(value)?,
            Condition::Exists { .. } => {}
        }
    }
    Ok(())
}

/// The values bound so far, and the bytes of their text.
#[derive(Default)]
struct Tally {
    values: usize,
    text_bytes: usize,
}

impl Tally {
    fn add(&mut self, value: &Value) -> Result<(), CoreError> {
        match value {
            Value::List(items) => return items.iter().try_for_each(|item| self.add(item)),
            Value::Text(text) if text.len() > MAX_VALUE_BYTES => {
                return Err(CoreError::invalid(format!(
                    "a value may be at most {MAX_VALUE_BYTES} bytes long, not {}",
                    text.len()
                )));
            }
            // No stored text holds one, and PostgreSQL refuses it.
            Value::Text(text) if text.contains('\0') => {
                return Err(CoreError::invalid("a value may not hold a NUL character"));
            }
            Value::Text(text) => self.text_bytes += text.len(),
            // PostgreSQL refuses a time before 4713 BC (its error, a 500);
            // SQLite's text times order wrongly before year 1 and past 9999.
            Value::Time(time) if !(1..=9999).contains(&time.year()) => {
                return Err(CoreError::invalid(format!(
                    "a date must fall in the years 1 to 9999, not {}",
                    time.year()
                )));
            }
            Value::Int(_) | Value::Bool(_) | Value::Time(_) => {}
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(CoreError::invalid(format!(
                "a query may hold at most {MAX_VALUES} values"
            )));
        }
        if self.text_bytes > MAX_TEXT_BYTES {
            return Err(CoreError::invalid(format!(
                "a query's values may hold at most {MAX_TEXT_BYTES} bytes of text"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::query::{Direction, Field, Op};

    fn name_is(name: &str) -> Condition {
        Condition::Compare {
            field: Field::Name,
            op: Op::Eq,
            value: Value::Text(name.to_owned()),
        }
    }

    fn ids_in(count: usize) -> Condition {
        Condition::Compare {
            field: Field::Id,
            op: Op::In,
            value: Value::List((0..count as i64).map(Value::Int).collect()),
        }
    }

    fn refusal(condition: &Condition, sort: &[Sort]) -> String {
        check_query(condition, sort).unwrap_err().to_string()
    }

    #[test]
    fn conditions_are_counted_empty_ones_too() {
        let most = Condition::Any(vec![name_is("a"); MAX_CONDITIONS - 1]);
        assert_eq!(check_query(&most, &[]), Ok(()));
        let empties = Condition::Any(vec![Condition::All(Vec::new()); MAX_CONDITIONS]);
        assert!(refusal(&empties, &[]).contains("at most 512 conditions"));
    }

    #[test]
    fn nesting_is_bounded() {
        let nested =
            |levels: usize| (1..levels).fold(name_is("a"), |inner, _| Condition::All(vec![inner]));
        assert_eq!(check_query(&nested(MAX_DEPTH), &[]), Ok(()));
        assert!(refusal(&nested(MAX_DEPTH + 1), &[]).contains("at most 16 levels"));
    }

    #[test]
    fn every_item_of_a_list_is_a_value() {
        let four_lists = Condition::Any(vec![ids_in(1000); 4]);
        assert_eq!(check_query(&four_lists, &[]), Ok(()));
        let five_lists = Condition::Any(vec![ids_in(1000); 5]);
        assert!(refusal(&five_lists, &[]).contains("at most 4096 values"));
    }

    #[test]
    fn a_nul_character_is_refused() {
        assert!(check_query(&name_is("a\0b"), &[]).is_err());
        assert_eq!(check_query(&name_is("a b"), &[]), Ok(()));
    }

    #[test]
    fn text_is_bounded_in_each_value_and_in_all() {
        let long = name_is(&"é".repeat(MAX_VALUE_BYTES / 2));
        assert_eq!(check_query(&long, &[]), Ok(()));
        let longer = name_is(&"a".repeat(MAX_VALUE_BYTES + 1));
        assert!(refusal(&longer, &[]).contains("at most 16000 bytes long"));
        let many = Condition::Any(vec![name_is(&"a".repeat(MAX_VALUE_BYTES)); 5]);
        assert!(refusal(&many, &[]).contains("65536 bytes of text"));
    }

    #[test]
    fn dates_fall_in_the_years_both_databases_read() {
        let created = |year: i32| Condition::Compare {
            field: Field::CreatedAt,
            op: app::query::Op::Ge,
            value: Value::Time(
                chrono::NaiveDate::from_ymd_opt(year, 1, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    .and_utc(),
            ),
        };
        assert_eq!(check_query(&created(1), &[]), Ok(()));
        assert_eq!(check_query(&created(9999), &[]), Ok(()));
        assert!(refusal(&created(-5000), &[]).contains("years 1 to 9999"));
        assert!(refusal(&created(10_000), &[]).contains("years 1 to 9999"));
    }

    #[test]
    fn sorts_take_at_most_eight_keys() {
        let sort = |keys: usize| {
            vec![
                Sort {
                    field: Field::Name,
                    direction: Direction::Asc,
                };
                keys
            ]
        };
        let everything = Condition::All(Vec::new());
        assert_eq!(check_query(&everything, &sort(MAX_SORT_KEYS)), Ok(()));
        assert!(refusal(&everything, &sort(MAX_SORT_KEYS + 1)).contains("at most 8 keys"));
    }
}
