//! Kubernetes resource quantities ("500m", "1.5", "128Mi", "1e3", "2G") as
//! exact integers (the scheduler sums requests, the agent turns limits into
//! CRI resources, both compute QoS from them).
//!
//! Owns: the upstream quantity grammar and turning a quantity into an integer
//! in a chosen unit (millicores for cpu, bytes for memory, plain count for
//! pods), in exact integer arithmetic, rounding up like upstream
//! `Quantity.MilliValue()`/`Value()`. Must not: know anything about pods or
//! nodes.
//!
//! Cost: one pass over the input with O(1) state. Digits beyond
//! [`MAX_SIGNIFICANT_DIGITS`] can only overflow (integer part) or round
//! (fraction), so they are not accumulated; a decimal exponent is bounded by
//! [`MAX_EXPONENT`], and scaling is at most [`MAX_SIGNIFICANT_DIGITS`]
//! multiplications or divisions whatever the exponent says.
//!
//! (The `kube_quantity` crate was tried: 0.9 rejects the `E`/`Ei` suffixes,
//! accepts `--1`, and computes in `f64`.)

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Largest accepted absolute decimal exponent (`1e99` is absurd but cheap to
/// reject; `1e1000000000` must not cost a billion steps).
pub const MAX_EXPONENT: i64 = 99;

/// Significant digits kept in the mantissa (an `i128` holds 38).
pub const MAX_SIGNIFICANT_DIGITS: u32 = 36;

/// A quantity string that could not be parsed or does not fit in an `i64`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QuantityError {
    /// The string is not of the form `<sign><digits>[.<digits>][suffix]`.
    #[error("invalid quantity {0:?}")]
    Invalid(String),
    /// The value does not fit in 64 bits in the requested unit.
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
    /// The decimal exponent (`e<n>`) is beyond +-[`MAX_EXPONENT`].
    #[error("quantity {0:?} has an exponent outside -99..=99")]
    Exponent(String),
}

/// A quantity parsed to `(-1)^negative * mantissa * 10^exp10 * 2^pow2`, with
/// `round_up` set when dropped fraction digits were not all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: i128,
    exp10: i64,
    pow2: u32,
    round_up: bool,
}

/// Cpu in millicores ("250m" -> 250, "2" -> 2000), rounded up.
pub fn cpu_millis(q: &Quantity) -> Result<i64, QuantityError> {
    milli_value(&q.0)
}

/// A plain value ("128Mi" -> 134217728, "1k" -> 1000), rounded up. Used for
/// memory (bytes) and pod counts.
pub fn value(q: &Quantity) -> Result<i64, QuantityError> {
    plain_value(&q.0)
}

/// [`cpu_millis`] of a quantity string.
pub fn milli_value(text: &str) -> Result<i64, QuantityError> {
    scaled(text, 3)
}

/// [`value`] of a quantity string.
pub fn plain_value(text: &str) -> Result<i64, QuantityError> {
    scaled(text, 0)
}

/// Whether `text` follows the quantity grammar (any magnitude), and its sign.
/// Returns `Ok(true)` for a negative quantity.
pub fn check_syntax(text: &str) -> Result<bool, QuantityError> {
    parse(text).map(|p| p.negative && p.mantissa != 0)
}

/// Parses `s` and returns its value times `10^extra_exp10`, rounded up.
fn scaled(s: &str, extra_exp10: i64) -> Result<i64, QuantityError> {
    let out_of_range = || QuantityError::OutOfRange(s.to_string());
    let p = parse(s)?;
    if p.mantissa == 0 {
        return Ok(0);
    }
    let mut mantissa = p.mantissa.checked_mul(1i128 << p.pow2).ok_or_else(out_of_range)?;
    // |exp| <= 99 + 9 + 3, and the number of kept digits is bounded, so this is small.
    let exp = p.exp10 + extra_exp10;
    if exp > 0 {
        // More than 38 factors of ten overflow an i128 whatever the mantissa.
        if exp > 38 {
            return Err(out_of_range());
        }
        for _ in 0..exp {
            mantissa = mantissa.checked_mul(10).ok_or_else(out_of_range)?;
        }
        mantissa += i128::from(p.round_up);
    } else {
        let mut inexact = p.round_up;
        // Dividing more than 39 times leaves 0 with a remainder: the result rounds up to 1.
        for _ in 0..exp.unsigned_abs().min(40) {
            inexact |= mantissa % 10 != 0;
            mantissa /= 10;
        }
        // Round up (towards +infinity for the magnitude, as upstream does).
        mantissa += i128::from(inexact);
    }
    let signed = if p.negative { -mantissa } else { mantissa };
    i64::try_from(signed).map_err(|_| out_of_range())
}

/// One pass over `s` following the upstream grammar:
/// `<sign>? (<digits> | <digits>.<digits>? | .<digits>) <suffix>` where the
/// suffix is a binary SI suffix (`Ki`..`Ei`), a decimal SI suffix (`n u m "" k
/// M G T P E`) or a decimal exponent (`e`/`E` and a signed integer).
fn parse(s: &str) -> Result<Parsed, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_string());
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut p = Parsed { negative, mantissa: 0, exp10: 0, pow2: 0, round_up: false };
    let mut kept = 0u32;
    let mut digits = 0usize;
    let mut seen_dot = false;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'.' if !seen_dot => seen_dot = true,
            b'0'..=b'9' => {
                digits += 1;
                let d = i128::from(c - b'0');
                if p.mantissa == 0 && d == 0 {
                    // A leading zero: no significance, only position.
                    if seen_dot {
                        p.exp10 -= 1;
                    }
                } else if kept < MAX_SIGNIFICANT_DIGITS {
                    p.mantissa = p.mantissa * 10 + d;
                    kept += 1;
                    if seen_dot {
                        p.exp10 -= 1;
                    }
                } else {
                    // Beyond the kept digits: an integer digit only scales, a fraction digit only rounds.
                    p.round_up |= d != 0;
                    if !seen_dot {
                        p.exp10 += 1;
                    }
                }
            }
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Err(invalid());
    }
    let (exp, pow2) = suffix_scale(&s[i..]).ok_or_else(invalid)?;
    if exp.abs() > MAX_EXPONENT {
        return Err(QuantityError::Exponent(s.to_string()));
    }
    p.exp10 += exp;
    p.pow2 = pow2;
    Ok(p)
}

/// Decimal exponent and binary shift of a suffix, or `None` if unknown. A
/// decimal exponent with more than 18 digits is reported as `i64::MAX`.
fn suffix_scale(suffix: &str) -> Option<(i64, u32)> {
    let scale = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => (exponent(other.strip_prefix(['e', 'E'])?)?, 0),
    };
    Some(scale)
}

/// A signed decimal integer, saturated to `i64::MAX`/`-i64::MAX` past 18 digits.
fn exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    let magnitude = if significant.len() > 18 { i64::MAX } else { significant.parse::<i64>().unwrap_or(0) };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    #[test]
    fn cpu_quantities_convert_to_millicores() {
        let cases = [
            ("1", 1000),
            ("250m", 250),
            ("0.5", 500),
            (".1", 100),
            ("1.5", 1500),
            ("2k", 2_000_000),
            ("1e3", 1_000_000),
            ("100u", 1),
            ("1n", 1),
            ("0", 0),
            ("+3", 3000),
        ];
        for (input, want) in cases {
            assert_eq!(cpu_millis(&q(input)), Ok(want), "{input}");
        }
    }

    #[test]
    fn memory_quantities_convert_to_bytes() {
        let cases = [
            ("128Mi", 134_217_728),
            ("1Gi", 1_073_741_824),
            ("1G", 1_000_000_000),
            ("1.5Ki", 1536),
            ("64", 64),
            ("500m", 1),
            ("1E", 1_000_000_000_000_000_000),
            ("2e2", 200),
            ("-1Ki", -1024),
        ];
        for (input, want) in cases {
            assert_eq!(value(&q(input)), Ok(want), "{input}");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for input in ["", "abc", "1.2.3", "1Qi", ".", "1ee", "--1", "1e1.5", "1e", "1e+", "1Ki1", "m", "-"] {
            assert_eq!(value(&q(input)), Err(QuantityError::Invalid(input.to_string())), "{input}");
        }
        assert_eq!(value(&q("100Ei")), Err(QuantityError::OutOfRange("100Ei".to_string())));
        for input in ["12Xi", "1e", "1 "] {
            assert!(plain_value(input).is_err(), "{input}");
        }
    }

    #[test]
    fn exponents_are_bounded_and_cheap() {
        // The live report: this took 38 s and blocked the scheduler.
        assert_eq!(milli_value("0e2147483644"), Err(QuantityError::Exponent("0e2147483644".into())));
        assert_eq!(milli_value("1e-2147483648"), Err(QuantityError::Exponent("1e-2147483648".into())));
        let huge = format!("1e{}", "9".repeat(100_000));
        assert_eq!(plain_value(&huge), Err(QuantityError::Exponent(huge.clone())));
        assert_eq!(plain_value("1e99"), Err(QuantityError::OutOfRange("1e99".into())));
        assert_eq!(plain_value("0e99"), Ok(0));
        assert_eq!(milli_value("1e-99"), Ok(1));
        assert_eq!(milli_value("9223372036854775807m"), Ok(i64::MAX));
        assert_eq!(milli_value("9223372036854775808m"), Err(QuantityError::OutOfRange("9223372036854775808m".into())));
        assert_eq!(plain_value("1e+3"), Ok(1000));
        assert_eq!(plain_value("1E3"), Ok(1000));
        assert_eq!(check_syntax("-1"), Ok(true));
        assert_eq!(check_syntax("-0"), Ok(false));
        assert_eq!(check_syntax("1e50"), Ok(false));
    }

    #[test]
    fn long_inputs_cost_one_pass() {
        let tiny = format!("0.{}1", "0".repeat(100_000));
        assert_eq!(milli_value(&tiny), Ok(1));
        let zeros = format!("{}7", "0".repeat(100_000));
        assert_eq!(plain_value(&zeros), Ok(7));
        let big = format!("1{}", "0".repeat(100_000));
        assert_eq!(plain_value(&big), Err(QuantityError::OutOfRange(big.clone())));
        assert_eq!(check_syntax(&big), Ok(false));
        let long_fraction = format!("1.{}", "3".repeat(100_000));
        assert_eq!(milli_value(&long_fraction), Ok(1334));
        assert!(matches!(plain_value(&"x".repeat(100_000)), Err(QuantityError::Invalid(_))));
    }

    #[test]
    fn whitespace_is_not_part_of_the_grammar() {
        for input in [" 1", "1 ", "1 Gi", "1.", "+.5"] {
            let _ = plain_value(input);
        }
        assert!(plain_value(" 1").is_err());
        assert!(plain_value("1 ").is_err());
        assert_eq!(plain_value("1."), Ok(1));
        assert_eq!(milli_value("+.5"), Ok(500));
    }

    #[test]
    fn string_forms_match_what_the_agent_needs() {
        for (text, milli) in [("500m", 500), ("1", 1000), ("1.5", 1500), ("0.1", 100), ("2", 2000), ("250000u", 250)] {
            assert_eq!(milli_value(text), Ok(milli), "{text}");
        }
        for (text, bytes) in [("128Mi", 128 * 1024 * 1024), ("1Gi", 1 << 30), ("1e3", 1000), ("64k", 64_000)] {
            assert_eq!(plain_value(text), Ok(bytes), "{text}");
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! Property tests: random strings never panic and cost one pass; valid
    //! quantities round-trip through their integer value.
    use super::*;
    use proptest::prelude::*;

    fn grammar() -> impl Strategy<Value = String> {
        let sign = prop::sample::select(vec!["", "+", "-"]);
        let suffix = prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e3", "e-2", "E+1",
        ]);
        (sign, "[0-9]{0,22}", prop::option::of("[0-9]{0,22}"), suffix).prop_map(|(sign, int, frac, suffix)| {
            let number = match frac {
                Some(f) => format!("{int}.{f}"),
                None => int,
            };
            format!("{sign}{number}{suffix}")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

        #[test]
        fn random_strings_never_panic(s in "\\PC{0,40}") {
            let _ = plain_value(&s);
            let _ = milli_value(&s);
            let _ = check_syntax(&s);
        }

        #[test]
        fn exponent_forms_never_panic(m in "[0-9.]{0,6}", e in "[eE][+-]?[0-9]{0,25}") {
            let s = format!("{m}{e}");
            let _ = plain_value(&s);
            let _ = milli_value(&s);
        }

        #[test]
        fn valid_quantities_round_trip(s in grammar()) {
            if let Ok(milli) = milli_value(&s) {
                prop_assert!(check_syntax(&s).is_ok());
                prop_assert_eq!(milli_value(&format!("{milli}m")), Ok(milli));
            }
            if let Ok(v) = plain_value(&s) {
                prop_assert_eq!(plain_value(&v.to_string()), Ok(v));
                // Rounding up never loses: the milli value is at most 1000x the plain value.
                if let (Ok(milli), true) = (milli_value(&s), v >= 0) {
                    prop_assert!(milli <= v.saturating_mul(1000));
                }
            }
        }
    }
}
