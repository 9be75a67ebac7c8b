//! Durations as users write them: `30s`, `15m`, `1h`, `1d`.

use crate::MonitorError;

/// Seconds in `text`: a positive whole number followed by `s`, `m`, `h` or
/// `d`.
pub fn parse_duration(text: &str) -> Result<i64, MonitorError> {
    let error = || MonitorError::Duration { text: text.to_string() };
    let trimmed = text.trim();
    let unit = trimmed.chars().last().ok_or_else(error)?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(error()),
    };
    let count: i64 = trimmed[..trimmed.len() - 1].parse().map_err(|_| error())?;
    if count <= 0 {
        return Err(error());
    }
    count.checked_mul(seconds).ok_or_else(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bad_text() {
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        for bad in ["", "h", "0m", "-1h", "1.5h", "1w", "15"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}' is not a duration")), "{e}");
        }
    }
}
