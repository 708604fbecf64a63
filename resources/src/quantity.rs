//! Kubernetes resource quantities ("500m", "1.5", "128Mi", "1e3", "2G") as
//! exact integers (the scheduler sums requests, the agent turns limits into
//! CRI resources, both compute QoS from them).
//!
//! Owns: turning a quantity into an integer in a chosen unit (millicores for
//! cpu, bytes for memory, plain count for pods), in exact integer arithmetic,
//! rounding up like upstream `Quantity.MilliValue()`/`Value()`. Must not: know
//! anything about pods or nodes.
//!
//! (The `kube_quantity` crate was tried: 0.9 rejects the `E`/`Ei` suffixes,
//! accepts `--1`, and computes in `f64`.)

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity string that could not be parsed or does not fit in an `i64`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QuantityError {
    /// The string is not of the form `<sign><digits>[.<digits>][suffix]`.
    #[error("invalid quantity {0:?}")]
    Invalid(String),
    /// The value does not fit in 64 bits in the requested unit.
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
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

/// Parses `s` and returns its value times `10^extra_exp10`, rounded up.
fn scaled(s: &str, extra_exp10: i32) -> Result<i64, QuantityError> {
    let invalid = || QuantityError::Invalid(s.to_string());
    let out_of_range = || QuantityError::OutOfRange(s.to_string());
    let trimmed = s.trim();
    let (negative, rest) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(invalid());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let mut mantissa: i128 = 0;
    for digit in int_part.bytes().chain(frac_part.bytes()) {
        mantissa =
            mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(digit - b'0'))).ok_or_else(out_of_range)?;
    }
    let frac_digits = i32::try_from(frac_part.len()).map_err(|_| invalid())?;
    let (exp10, pow2) = suffix_scale(suffix).ok_or_else(invalid)?;
    let mut exp = exp10 + extra_exp10 - frac_digits;
    mantissa = mantissa.checked_mul(1i128 << pow2).ok_or_else(out_of_range)?;
    while exp > 0 {
        mantissa = mantissa.checked_mul(10).ok_or_else(out_of_range)?;
        exp -= 1;
    }
    while exp < 0 {
        // Round up (towards +infinity for the magnitude, as upstream does).
        mantissa = mantissa / 10 + i128::from(mantissa % 10 != 0);
        exp += 1;
    }
    let signed = if negative { -mantissa } else { mantissa };
    i64::try_from(signed).map_err(|_| out_of_range())
}

/// Decimal exponent and binary shift of a suffix, or `None` if unknown.
fn suffix_scale(suffix: &str) -> Option<(i32, u32)> {
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
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            (exp.parse::<i32>().ok()?, 0)
        }
    };
    Some(scale)
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
        for input in ["", "abc", "1.2.3", "1Qi", ".", "1ee", "--1"] {
            assert_eq!(value(&q(input)), Err(QuantityError::Invalid(input.to_string())), "{input}");
        }
        assert_eq!(value(&q("100Ei")), Err(QuantityError::OutOfRange("100Ei".to_string())));
        for input in ["12Xi", "1e"] {
            assert!(plain_value(input).is_err(), "{input}");
        }
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
