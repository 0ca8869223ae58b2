//! CPU and memory amounts: what a node has, what is reserved, what a process asks for.
//!
//! CPU is counted in millicores (1000 = one core) so that fractional requests (`--cpu 0.5`)
//! stay exact integers; memory in bytes.

use std::fmt;

/// An amount of CPU and memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Thousandths of a core.
    pub cpu_millis: u64,
    /// Bytes.
    pub mem_bytes: u64,
}

impl Resources {
    /// Nothing: what a process that reserves nothing asks for.
    pub const ZERO: Resources = Resources {
        cpu_millis: 0,
        mem_bytes: 0,
    };

    /// `cpu_millis` thousandths of a core and `mem_bytes` bytes.
    pub fn new(cpu_millis: u64, mem_bytes: u64) -> Resources {
        Resources {
            cpu_millis,
            mem_bytes,
        }
    }

    /// Both amounts added, saturating (never wraps on hostile figures).
    pub fn saturating_add(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            mem_bytes: self.mem_bytes.saturating_add(other.mem_bytes),
        }
    }

    /// Both amounts subtracted, stopping at zero.
    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            mem_bytes: self.mem_bytes.saturating_sub(other.mem_bytes),
        }
    }
}

/// Why a `--cpu` or `--mem` figure was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a number in the accepted form.
    #[error("{given:?} is not {expected}")]
    Malformed {
        /// The text given.
        given: String,
        /// The accepted form, for people.
        expected: &'static str,
    },
    /// Too large to count.
    #[error("{given:?} is too large")]
    TooLarge {
        /// The text given.
        given: String,
    },
}

const CPU_FORM: &str = "a number of cores such as 2, 0.5 or 1.25 (at most 3 decimals)";
const MEM_FORM: &str =
    "a size such as 512, 200K, 200M, 1.5G or 2GiB (K, M, G, T are powers of 1024)";

/// Reads a CPU amount in cores (`2`, `0.5`, `1.25`) as millicores.
pub fn parse_cpu(text: &str) -> Result<u64, AmountError> {
    let malformed = || AmountError::Malformed {
        given: text.to_string(),
        expected: CPU_FORM,
    };
    scaled_decimal(text.trim(), 1000, 3).map_err(|e| match e {
        ScaleError::Malformed => malformed(),
        ScaleError::TooLarge => AmountError::TooLarge {
            given: text.to_string(),
        },
    })
}

/// Reads a memory size (`512`, `200K`, `200M`, `1.5G`, `2GiB`; binary multiples) as bytes.
pub fn parse_mem(text: &str) -> Result<u64, AmountError> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("iB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(unit);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(AmountError::Malformed {
                given: text.to_string(),
                expected: MEM_FORM,
            })
        }
    };
    // Up to 3 decimals of the unit (1.5G), rounded down to whole bytes.
    scaled_decimal(number, 1u64 << shift, if shift == 0 { 0 } else { 3 }).map_err(|e| match e {
        ScaleError::Malformed => AmountError::Malformed {
            given: text.to_string(),
            expected: MEM_FORM,
        },
        ScaleError::TooLarge => AmountError::TooLarge {
            given: text.to_string(),
        },
    })
}

enum ScaleError {
    Malformed,
    TooLarge,
}

/// `number × scale` for a decimal `number` with at most `max_decimals` decimals, rounded down.
fn scaled_decimal(number: &str, scale: u64, max_decimals: usize) -> Result<u64, ScaleError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || fraction.len() > max_decimals
        || (number.contains('.') && fraction.is_empty())
    {
        return Err(ScaleError::Malformed);
    }
    let whole: u64 = whole.parse().map_err(|_| ScaleError::TooLarge)?;
    let mut fraction_value: u128 = 0;
    let mut denominator: u128 = 1;
    for b in fraction.bytes() {
        fraction_value = fraction_value * 10 + u128::from(b - b'0');
        denominator *= 10;
    }
    let total =
        u128::from(whole) * u128::from(scale) + fraction_value * u128::from(scale) / denominator;
    u64::try_from(total).map_err(|_| ScaleError::TooLarge)
}

/// Millicores for people: `1.5 cores`, `1 core`, `0.25 cores`.
pub struct Cores(pub u64);

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let millis = self.0 % 1000;
        if millis == 0 {
            write!(f, "{whole}")?;
        } else {
            let decimals = format!("{millis:03}");
            write!(f, "{whole}.{}", decimals.trim_end_matches('0'))?;
        }
        f.write_str(if self.0 == 1000 { " core" } else { " cores" })
    }
}

/// Bytes for people, in binary units with up to one decimal: `512 B`, `1.5 KiB`, `200 MiB`.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut unit = 0;
        let mut scale: u64 = 1;
        while unit + 1 < UNITS.len() && self.0 / scale >= 1024 {
            scale *= 1024;
            unit += 1;
        }
        let whole = self.0 / scale;
        let tenths = (self.0 % scale) * 10 / scale;
        if tenths == 0 {
            write!(f, "{whole} {}", UNITS[unit])
        } else {
            write!(f, "{whole}.{tenths} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_amounts() {
        assert_eq!(parse_cpu("2"), Ok(2000));
        assert_eq!(parse_cpu("0.5"), Ok(500));
        assert_eq!(parse_cpu(" 1.25 "), Ok(1250));
        assert_eq!(parse_cpu("0.001"), Ok(1));
        for bad in ["", ".5", "1.", "1.0001", "-1", "1e3", "one", "1,5"] {
            assert!(
                matches!(parse_cpu(bad), Err(AmountError::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_cpu("99999999999999999999"),
            Err(AmountError::TooLarge { .. })
        ));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem("512"), Ok(512));
        assert_eq!(parse_mem("200K"), Ok(200 << 10));
        assert_eq!(parse_mem("200M"), Ok(200 << 20));
        assert_eq!(parse_mem("200m"), Ok(200 << 20));
        assert_eq!(parse_mem("200MB"), Ok(200 << 20));
        assert_eq!(parse_mem("2GiB"), Ok(2 << 30));
        assert_eq!(parse_mem("1.5G"), Ok(3 << 29));
        assert_eq!(parse_mem("1 T"), Ok(1 << 40));
        for bad in ["", "M", "1.5", "1X", "1..5M", "-1M", "1.0001G", "1 M B"] {
            assert!(
                matches!(parse_mem(bad), Err(AmountError::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_mem("20000000T"),
            Err(AmountError::TooLarge { .. })
        ));
    }

    #[test]
    fn amounts_for_people() {
        assert_eq!(Cores(1000).to_string(), "1 core");
        assert_eq!(Cores(1500).to_string(), "1.5 cores");
        assert_eq!(Cores(250).to_string(), "0.25 cores");
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(200 << 20).to_string(), "200 MiB");
        assert_eq!(Bytes(u64::MAX).to_string(), "16383.9 PiB");
    }
}
