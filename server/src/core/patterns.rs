//! Regular expressions in queries (MWS `$regex`): few, short, and written in
//! a subset that SQLite's `REGEXP` (the `regex` crate, registered by sqlx)
//! and PostgreSQL's `~` (POSIX advanced regular expressions) read alike, so
//! that a query finds the same images on either backend. Anything else is
//! refused, naming the construct, before a database sees it.
//!
//! Accepted: characters, punctuation escaped with `\`, `.`, `^`, `$`,
//! alternation, groups `(…)` and `(?:…)`, bracket classes of characters and
//! ranges (`[a-z0-9_]`, `[^…]`, with `\d \s \w` inside), `\d \s \w \D \S \W`,
//! and the repetitions `* + ? {n} {n,} {n,m}` with counts up to 255,
//! greedy or lazy. One leading `(?i)`, which is how the MWS parser writes
//! `$options: "i"`, makes the whole pattern case-insensitive: PostgreSQL
//! reads it as an ARE's embedded options, which it allows only there.
//!
//! Both engines agree on ASCII text. On other characters, `\d \s \w` and
//! case-insensitive matching follow Unicode in the `regex` crate and the
//! database's locale in PostgreSQL (`٣` is a digit, and U+00A0 a space, to
//! the first only); and `.` matches a line feed in PostgreSQL only, which
//! no field MWS can search holds.

use app::error::CoreError;
use app::query::{Condition, Op, Value};
use regex_syntax::ast::parse::ParserBuilder;
use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassSet, ClassSetItem, GroupKind, LiteralKind, RepetitionKind,
    RepetitionRange, Span,
};

/// The most regular expressions one query may hold.
const MAX_PATTERNS: usize = 4;

/// The longest regular expression, in bytes, not counting the `(?i)` that
/// `$options: "i"` adds.
const MAX_PATTERN_LEN: usize = 256;

/// The largest count of a `{n,m}` repetition: PostgreSQL's `RE_DUP_MAX`.
const MAX_REPEAT: u32 = 255;

/// How many characters and classes a pattern may stand for once its counted
/// repetitions are written out. `(a{255}){255}` is short but large, and
/// PostgreSQL compiles a counted repetition by copying its operand.
const MAX_EXPANDED: u64 = 1024;

/// How deep the syntax tree may nest (groups, repetitions, alternations).
/// The parser itself does not recurse; this also bounds the recursion of
/// the checks below.
const MAX_NESTING: u32 = 64;

/// The most memory the compiled program of a pattern may take.
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// What the MWS parser writes before a pattern for `$options: "i"`.
const CASE_INSENSITIVE: &str = "(?i)";

/// Refuses a condition whose regular expressions are too many, too long or
/// too costly, or outside the subset both backends read alike.
pub(super) fn check_patterns(condition: &Condition) -> Result<(), CoreError> {
    let mut patterns = Vec::new();
    collect(condition, &mut patterns);
    if patterns.len() > MAX_PATTERNS {
        return Err(CoreError::invalid(format!(
            "a query may hold at most {MAX_PATTERNS} regular expressions, not {}",
            patterns.len()
        )));
    }
    patterns.into_iter().try_for_each(check_pattern)
}

/// Every regular expression in `condition`, however nested.
fn collect<'c>(condition: &'c Condition, patterns: &mut Vec<&'c str>) {
    match condition {
        Condition::All(items) | Condition::Any(items) => {
            for item in items {
                collect(item, patterns);
            }
        }
        Condition::Compare {
            op: Op::Regex,
            value: Value::Text(pattern),
            ..
        } => patterns.push(pattern),
        _ => {}
    }
}

fn check_pattern(pattern: &str) -> Result<(), CoreError> {
    let body = pattern.strip_prefix(CASE_INSENSITIVE).unwrap_or(pattern);
    if body.len() > MAX_PATTERN_LEN {
        return Err(CoreError::invalid(format!(
            "a regular expression is at most {MAX_PATTERN_LEN} bytes"
        )));
    }
    let subset = Subset { pattern: body };
    // Octal escapes off: `\1` is then refused as the backreference it is to
    // PostgreSQL.
    let ast = ParserBuilder::new()
        .nest_limit(MAX_NESTING)
        .octal(false)
        .build()
        .parse(body)
        .map_err(|error| subset.parse_error(&error))?;
    if subset.size(&ast)? > MAX_EXPANDED {
        return Err(CoreError::invalid(format!(
            "a regular expression may stand for at most {MAX_EXPANDED} characters once its \
             repetitions are counted out"
        )));
    }
    compile(pattern)
}

/// Compiles the whole pattern as SQLite will, within a size bound.
fn compile(pattern: &str) -> Result<(), CoreError> {
    match regex::RegexBuilder::new(pattern)
        .size_limit(COMPILED_SIZE_LIMIT)
        .build()
    {
        Ok(_) => Ok(()),
        Err(regex::Error::CompiledTooBig(limit)) => Err(CoreError::invalid(format!(
            "a regular expression may compile to at most {limit} bytes; this one is larger"
        ))),
        Err(error) => Err(CoreError::invalid(format!(
            "invalid regular expression: {error}"
        ))),
    }
}

/// Walks a parsed pattern, refusing what the two engines read differently,
/// and measures it: how many characters and classes it stands for with its
/// counted repetitions written out.
struct Subset<'p> {
    pattern: &'p str,
}

impl Subset<'_> {
    fn size(&self, ast: &Ast) -> Result<u64, CoreError> {
        Ok(match ast {
            Ast::Empty(_) => 0,
            Ast::Flags(set) => return Err(self.flags(&set.span)),
            Ast::Literal(literal) => {
                self.literal(literal)?;
                1
            }
            Ast::Dot(_) | Ast::ClassPerl(_) => 1,
            Ast::Assertion(assertion) => {
                self.assertion(assertion)?;
                0
            }
            Ast::ClassUnicode(class) => return Err(self.refuse("Unicode classes", &class.span)),
            Ast::ClassBracketed(class) => {
                self.bracketed(class)?;
                1
            }
            Ast::Repetition(repetition) => self.repetition(repetition)?,
            Ast::Group(group) => {
                self.group(group)?;
                self.size(&group.ast)?
            }
            Ast::Alternation(alternation) => self.sum(&alternation.asts)?,
            Ast::Concat(concat) => self.sum(&concat.asts)?,
        })
    }

    fn sum(&self, asts: &[Ast]) -> Result<u64, CoreError> {
        let mut total = 0u64;
        for ast in asts {
            total = total.saturating_add(self.size(ast)?);
        }
        Ok(total)
    }

    fn literal(&self, literal: &ast::Literal) -> Result<(), CoreError> {
        match literal.kind {
            // PostgreSQL refuses NUL in text, and no searchable field holds
            // a control character.
            LiteralKind::Verbatim if literal.c.is_control() => Err(CoreError::invalid(
                "control characters are not allowed in a regular expression",
            )),
            LiteralKind::Verbatim => Ok(()),
            // `\` before punctuation is that character in both engines.
            LiteralKind::Meta | LiteralKind::Superfluous if literal.c.is_ascii_punctuation() => {
                Ok(())
            }
            LiteralKind::Meta | LiteralKind::Superfluous => {
                Err(self.refuse("escaped spaces", &literal.span))
            }
            LiteralKind::Octal => Err(self.refuse("octal escapes", &literal.span)),
            LiteralKind::HexFixed(_) | LiteralKind::HexBrace(_) => {
                Err(self.refuse("hex and Unicode escapes", &literal.span))
            }
            LiteralKind::Special(_) => Err(self.refuse("control-character escapes", &literal.span)),
        }
    }

    fn assertion(&self, assertion: &ast::Assertion) -> Result<(), CoreError> {
        match assertion.kind {
            // Without the multi-line flag, `^` and `$` anchor at the ends of
            // the text in both engines.
            AssertionKind::StartLine | AssertionKind::EndLine => Ok(()),
            AssertionKind::StartText | AssertionKind::EndText => {
                Err(self.refuse("\\A and \\z", &assertion.span))
            }
            // `\b` is a backspace in PostgreSQL, `\<` a plain `<`.
            _ => Err(self.refuse("word boundaries", &assertion.span)),
        }
    }

    fn bracketed(&self, class: &ast::ClassBracketed) -> Result<(), CoreError> {
        match &class.kind {
            // `[a&&b]` is an intersection to the `regex` crate, three
            // characters to PostgreSQL.
            ClassSet::BinaryOp(operation) => {
                Err(self.refuse("class set operations (&&, --, ~~)", &operation.span))
            }
            ClassSet::Item(ClassSetItem::Union(union)) => {
                let last = union.items.len().saturating_sub(1);
                for (index, item) in union.items.iter().enumerate() {
                    self.class_item(item, index == 0, index == last)?;
                }
                Ok(())
            }
            ClassSet::Item(item) => self.class_item(item, true, true),
        }
    }

    /// One member of a bracket class; `first` and `last` say where it stands,
    /// which decides what a bare `]` or `-` means.
    fn class_item(&self, item: &ClassSetItem, first: bool, last: bool) -> Result<(), CoreError> {
        match item {
            ClassSetItem::Empty(_) => Ok(()),
            ClassSetItem::Literal(literal) => {
                self.literal(literal)?;
                if !matches!(literal.kind, LiteralKind::Verbatim) {
                    return Ok(());
                }
                let rule = match literal.c {
                    ']' if !first => "must come first or be escaped as '\\]'",
                    '-' if !(first || last) => "must come first or last, or be escaped as '\\-'",
                    // `[:`, `[.` and `[=` open POSIX classes in PostgreSQL.
                    '[' => "must be escaped as '\\['",
                    _ => return Ok(()),
                };
                Err(CoreError::invalid(format!(
                    "'{}' inside brackets {rule}",
                    literal.c
                )))
            }
            ClassSetItem::Range(range) => {
                for end in [&range.start, &range.end] {
                    self.literal(end)?;
                    let plain = matches!(end.kind, LiteralKind::Verbatim)
                        && !matches!(end.c, '[' | ']' | '-' | '^' | '\\');
                    if !plain {
                        return Err(CoreError::invalid(format!(
                            "a range in brackets starts and ends with plain characters, \
                             not '{}'",
                            self.snippet(&range.span)
                        )));
                    }
                }
                Ok(())
            }
            // ASCII-only in the `regex` crate, by locale in PostgreSQL.
            ClassSetItem::Ascii(class) => {
                Err(self.refuse("POSIX classes such as [:alpha:]", &class.span))
            }
            ClassSetItem::Unicode(class) => Err(self.refuse("Unicode classes", &class.span)),
            // Older PostgreSQL releases refuse `[\D]`.
            ClassSetItem::Perl(class) if class.negated => {
                Err(self.refuse("\\D, \\S and \\W inside brackets", &class.span))
            }
            ClassSetItem::Perl(_) => Ok(()),
            ClassSetItem::Bracketed(class) => Err(self.refuse("nested brackets", &class.span)),
            ClassSetItem::Union(union) => Err(self.refuse("nested brackets", &union.span)),
        }
    }

    /// Lazy repetitions (`*?`, `{n,m}?`) are accepted: both engines support
    /// them, and both backends only ask whether a pattern matches somewhere.
    /// Greediness decides which match is found, never whether there is one
    /// (PostgreSQL's rule that the first quantifier sets the preference of
    /// the whole expression changes match extents only).
    fn repetition(&self, repetition: &ast::Repetition) -> Result<u64, CoreError> {
        // `a**`, `a{1}{2}` and `^*` are fine to the `regex` crate and
        // "quantifier operand invalid" to PostgreSQL.
        if matches!(*repetition.ast, Ast::Repetition(_) | Ast::Assertion(_)) {
            return Err(CoreError::invalid(format!(
                "a repetition may not follow another repetition or an anchor (found '{}'); \
                 put it in a group",
                self.snippet(&repetition.span)
            )));
        }
        // PostgreSQL reads `{ 2 }` as text, the `regex` crate as a count.
        let operator = self.snippet(&repetition.op.span);
        if operator.chars().any(char::is_whitespace) {
            return Err(CoreError::invalid(format!(
                "repetition counts are written without spaces, not '{operator}'"
            )));
        }
        let largest = match &repetition.op.kind {
            RepetitionKind::ZeroOrOne | RepetitionKind::ZeroOrMore | RepetitionKind::OneOrMore => 1,
            RepetitionKind::Range(RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n)) => *n,
            RepetitionKind::Range(RepetitionRange::Bounded(_, m)) => *m,
        };
        if largest > MAX_REPEAT {
            return Err(CoreError::invalid(format!(
                "a repetition count is at most {MAX_REPEAT}, not {largest}"
            )));
        }
        Ok(self
            .size(&repetition.ast)?
            .saturating_mul(u64::from(largest.max(1))))
    }

    fn group(&self, group: &ast::Group) -> Result<(), CoreError> {
        match &group.kind {
            GroupKind::CaptureIndex(_) => Ok(()),
            GroupKind::CaptureName { .. } => Err(self.refuse("named groups", &group.span)),
            GroupKind::NonCapturing(flags) if flags.items.is_empty() => Ok(()),
            GroupKind::NonCapturing(_) => Err(self.flags(&group.span)),
        }
    }

    fn flags(&self, span: &Span) -> CoreError {
        CoreError::invalid(format!(
            "inline flags are not supported in regular expressions (found '{}'); only one \
             leading (?i), which $options \"i\" adds, makes a pattern case-insensitive",
            self.snippet(span)
        ))
    }

    /// What the `regex` crate's parser refused, in words naming the construct
    /// where it is one PostgreSQL would accept with another meaning.
    fn parse_error(&self, error: &ast::Error) -> CoreError {
        match error.kind() {
            ast::ErrorKind::UnsupportedBackreference => self.refuse("backreferences", error.span()),
            ast::ErrorKind::UnsupportedLookAround => {
                self.refuse("look-around assertions", error.span())
            }
            ast::ErrorKind::NestLimitExceeded(_) => {
                CoreError::invalid("a regular expression nests too deeply")
            }
            kind => CoreError::invalid(format!(
                "invalid regular expression: {kind} (at byte {})",
                error.span().start.offset
            )),
        }
    }

    fn refuse(&self, what: &str, span: &Span) -> CoreError {
        CoreError::invalid(format!(
            "{what} are not supported in regular expressions (found '{}')",
            self.snippet(span)
        ))
    }

    /// The part of the pattern at `span`, shortened for a message.
    fn snippet(&self, span: &Span) -> String {
        const SHOWN: usize = 24;
        let text = self
            .pattern
            .get(span.start.offset..span.end.offset)
            .unwrap_or_default();
        if text.chars().count() > SHOWN {
            format!("{}…", text.chars().take(SHOWN).collect::<String>())
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::query::Field;

    fn regex(pattern: &str) -> Condition {
        Condition::Compare {
            field: Field::Name,
            op: Op::Regex,
            value: Value::Text(pattern.to_owned()),
        }
    }

    fn refusal(pattern: &str) -> String {
        match check_patterns(&regex(pattern)) {
            Ok(()) => panic!("{pattern:?} accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_shared_subset_is_accepted() {
        let longest = "a".repeat(MAX_PATTERN_LEN);
        let longest_ignoring_case = format!("(?i){longest}");
        for pattern in [
            "",
            "ubuntu",
            "^ubu.*[0-9]{2}$",
            "^(centos|ubuntu)-\\d+$",
            "(?:ab|cd)+x?",
            "\\.iso$",
            "a\\+b\\(c\\)\\[d\\]\\{e\\}\\|\\^\\$\\\\\\.\\*\\?",
            "\\%\\/\\-\\#\\&\\~\\_",
            "a}b]",
            "é.ü",
            "'; DROP TABLE images; --",
            "[a-z0-9_.-]+",
            "[^a-z]",
            "[]a]",
            "[^]a]",
            "[-a]",
            "[a-]",
            "[a-c-]",
            "[\\]\\-\\[\\\\]",
            "[\\d\\s\\w]",
            "\\D\\S\\W",
            "x{0}y{3}z{2,}w{1,255}",
            "a*?b+?c??d{1,2}?",
            "(a|)(^x|y$)*",
            "(?i)^cent",
            "(?i)[a-z]+\\d",
            "(?i)",
            &longest,
            &longest_ignoring_case,
        ] {
            assert_eq!(check_patterns(&regex(pattern)), Ok(()), "{pattern:?}");
        }
    }

    #[test]
    fn other_constructs_are_refused_by_name() {
        for (pattern, named) in [
            ("(?i)(?i)x", "inline flags"),
            ("(?s)x", "inline flags"),
            ("(?-i)x", "inline flags"),
            ("x(?i)y", "inline flags"),
            ("(?i:x)", "inline flags"),
            ("\\bx", "word boundaries"),
            ("x\\B", "word boundaries"),
            ("\\<x\\>", "word boundaries"),
            ("\\b{start}x", "word boundaries"),
            ("\\Ax\\z", "\\A and \\z"),
            ("(?P<n>x)", "named groups"),
            ("(?<n>x)", "named groups"),
            ("\\pL", "Unicode classes"),
            ("\\p{Greek}", "Unicode classes"),
            ("[\\pL]", "Unicode classes"),
            ("[[:alpha:]]", "POSIX classes"),
            ("[[a]]", "nested brackets"),
            ("[a&&b]", "set operations"),
            ("[\\D]", "inside brackets"),
            ("(a)\\1", "backreferences"),
            ("(?=x)", "look-around"),
            ("(?<!x)y", "look-around"),
            ("\\x41", "hex and Unicode escapes"),
            ("\\u{41}", "hex and Unicode escapes"),
            ("\\n", "control-character escapes"),
            ("\\t", "control-character escapes"),
            ("a\u{0}b", "control characters"),
            ("[a-c-e]", "'-' inside brackets"),
            ("[!-\\]]", "plain characters"),
            ("a**", "may not follow another"),
            ("x{1}{2}", "may not follow another"),
            ("^*", "may not follow another"),
            ("a{256}", "at most 255"),
            ("a{1,300}", "at most 255"),
            ("a{ 2 }", "without spaces"),
            ("(a{255}){255}", "at most 1024 characters"),
            ("(unclosed", "invalid regular expression"),
            ("a{2,1}", "invalid regular expression"),
        ] {
            let message = refusal(pattern);
            assert!(message.contains(named), "{pattern:?}: {message}");
        }
    }

    #[test]
    fn patterns_are_few_and_short() {
        let message = refusal(&"a".repeat(MAX_PATTERN_LEN + 1));
        assert!(message.contains("at most 256 bytes"), "{message}");

        let four = Condition::All(vec![
            regex("a"),
            Condition::Any(vec![regex("b"), regex("c")]),
            regex("d"),
        ]);
        assert_eq!(check_patterns(&four), Ok(()));
        let five = four.and(Condition::Any(vec![regex("e")]));
        let message = check_patterns(&five).unwrap_err().to_string();
        assert!(
            message.contains("at most 4 regular expressions"),
            "{message}"
        );
    }

    #[test]
    fn other_conditions_are_left_alone() {
        let condition = Condition::All(vec![
            Condition::Compare {
                field: Field::Name,
                op: Op::Like,
                value: Value::Text("(?s)\\b%".into()),
            },
            Condition::Exists {
                field: Field::OsType,
                exists: true,
            },
        ]);
        assert_eq!(check_patterns(&condition), Ok(()));
    }
}
