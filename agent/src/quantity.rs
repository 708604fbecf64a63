//! Parsing of Kubernetes resource quantities (`500m`, `1.5`, `128Mi`, `1e3`)
//! into the integers the runtime wants (milli-CPU, bytes).

/// A quantity string that is not a valid Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}")]
pub struct InvalidQuantity(pub String);

/// Parses `text` into a number scaled by its suffix.
pub fn parse(text: &str) -> Result<f64, InvalidQuantity> {
    let bad = || InvalidQuantity(text.to_string());
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let power: i32 = exp[1..].parse().map_err(|_| bad())?;
            10f64.powi(power)
        }
        _ => return Err(bad()),
    };
    Ok(value * scale)
}

/// CPU quantity in milli-cores, rounded up.
pub fn milli_cpu(text: &str) -> Result<i64, InvalidQuantity> {
    Ok((parse(text)? * 1000.0).ceil() as i64)
}

/// Memory quantity in bytes, rounded up.
pub fn bytes(text: &str) -> Result<i64, InvalidQuantity> {
    Ok(parse(text)?.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_memory_forms() {
        let cases = [("500m", 500), ("1", 1000), ("1.5", 1500), ("0.1", 100), ("2", 2000), ("250000u", 250)];
        for (text, milli) in cases {
            assert_eq!(milli_cpu(text), Ok(milli), "{text}");
        }
        let cases = [
            ("128Mi", 128 * 1024 * 1024),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("1e3", 1000),
            ("64k", 64_000),
            ("100", 100),
        ];
        for (text, value) in cases {
            assert_eq!(bytes(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in ["", "abc", "12Xi", "1e"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
