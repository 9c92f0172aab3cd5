//! Value types used by the configuration: sizes, durations, secrets and the
//! small closed enums.
//!
//! Every type here parses from the same text whether it comes from the TOML
//! file or from a `RINGFS_*` environment variable, and serializes back to a
//! string that parses to the same value, so `ringfs config show` output can be
//! fed back in as a config file.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Splits `"  1.5 MiB "` into (`"1"`, `Some("5")`, `"MiB"`).
///
/// Shared by sizes and durations so both accept exactly the same number
/// syntax: digits, an optional fraction, optional blanks, an optional unit.
fn split_number<'a>(
    what: &str,
    text: &'a str,
) -> Result<(&'a str, Option<&'a str>, &'a str), String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("empty {what}"));
    }
    if t.starts_with('-') {
        return Err(format!("{what} cannot be negative, got {text:?}"));
    }
    let int_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let int = &t[..int_end];
    if int.is_empty() {
        return Err(format!("expected a number at the start of {what} {text:?}"));
    }
    let mut rest = &t[int_end..];
    let mut frac = None;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let frac_end = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        if frac_end == 0 {
            return Err(format!("expected digits after '.' in {what} {text:?}"));
        }
        frac = Some(&after_dot[..frac_end]);
        rest = &after_dot[frac_end..];
    }
    Ok((int, frac, rest.trim_start()))
}

/// `int.frac * mult`, rounded down, computed exactly in 128-bit arithmetic.
/// Returns `None` on overflow of `u128` (callers then range-check the result).
fn scale(int: &str, frac: Option<&str>, mult: u128) -> Option<u128> {
    let mut whole: u128 = 0;
    for d in int.bytes() {
        whole = whole.checked_mul(10)?.checked_add(u128::from(d - b'0'))?;
    }
    let mut value = whole.checked_mul(mult)?;
    if let Some(frac) = frac {
        // More than 18 fractional digits cannot change the result for any
        // unit we accept (the largest multiplier is < 10^19), so ignore them
        // instead of overflowing 10^digits.
        let frac = &frac[..frac.len().min(18)];
        let mut num: u128 = 0;
        for d in frac.bytes() {
            num = num * 10 + u128::from(d - b'0');
        }
        let den = 10u128.pow(frac.len() as u32);
        value = value.checked_add(num.checked_mul(mult)? / den)?;
    }
    Some(value)
}

// ---------------------------------------------------------------------------
// ByteSize
// ---------------------------------------------------------------------------

/// A number of bytes.
///
/// Parsed from a TOML integer (bytes) or a string such as `"64MiB"`,
/// `"4 KiB"`, `"1G"`, `"512k"` or `"1.5MiB"`. `K/M/G/T/P/E` and
/// `KiB/MiB/...` are binary (powers of 1024) because that is what people
/// mean for cache and buffer sizes; `KB/MB/GB/TB/PB/EB` are decimal for
/// those who want them. Unit letters are case-insensitive. Fractions are
/// rounded down to a whole byte. Serializes back to the shortest exact
/// binary form (`"64MiB"`), or `"<n>B"` when no binary unit divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

const KIB: u64 = 1024;

impl ByteSize {
    /// `n` bytes.
    pub const fn b(n: u64) -> Self {
        ByteSize(n)
    }
    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * KIB)
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * KIB * KIB)
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n * KIB * KIB * KIB)
    }
    /// `n` TiB.
    pub const fn tib(n: u64) -> Self {
        ByteSize(n * KIB * KIB * KIB * KIB)
    }
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
    /// The size as a `usize`, saturating on (hypothetical) 32-bit targets so
    /// a huge limit still means "practically unlimited" rather than wrapping.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl From<u64> for ByteSize {
    fn from(n: u64) -> Self {
        ByteSize(n)
    }
}

impl From<ByteSize> for u64 {
    fn from(s: ByteSize) -> u64 {
        s.0
    }
}

const SIZE_UNITS_HELP: &str =
    "B, KiB, MiB, GiB, TiB, PiB, EiB, K, M, G, T, P, E, KB, MB, GB, TB, PB, EB";

fn size_unit(unit: &str) -> Option<u128> {
    let u = unit.to_ascii_lowercase();
    let pow = |base: u128, e: u32| base.pow(e);
    Some(match u.as_str() {
        "" | "b" => 1,
        "k" | "kib" => pow(1024, 1),
        "m" | "mib" => pow(1024, 2),
        "g" | "gib" => pow(1024, 3),
        "t" | "tib" => pow(1024, 4),
        "p" | "pib" => pow(1024, 5),
        "e" | "eib" => pow(1024, 6),
        "kb" => pow(1000, 1),
        "mb" => pow(1000, 2),
        "gb" => pow(1000, 3),
        "tb" => pow(1000, 4),
        "pb" => pow(1000, 5),
        "eb" => pow(1000, 6),
        _ => return None,
    })
}

/// Parses a size string; the error is a complete sentence fragment suitable
/// after `"<key>: "`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (int, frac, unit) = split_number("size", text)?;
    let mult = size_unit(unit).ok_or_else(|| {
        format!("invalid size {text:?}: unknown unit {unit:?} (use one of {SIZE_UNITS_HELP})")
    })?;
    if mult == 1 && frac.is_some() {
        return Err(format!(
            "invalid size {text:?}: a byte count must be a whole number"
        ));
    }
    scale(int, frac, mult)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| format!("size {text:?} is too large (the maximum is 16EiB - 1 byte)"))
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let n = self.0;
        if n == 0 {
            return f.write_str("0B");
        }
        let mut best = None;
        let mut m: u64 = 1;
        for unit in UNITS {
            m *= 1024;
            if n.is_multiple_of(m) {
                best = Some((n / m, unit));
            } else {
                break;
            }
        }
        match best {
            Some((v, unit)) => write!(f, "{v}{unit}"),
            None => write!(f, "{n}B"),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: an integer number of bytes or a string like \"64MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size cannot be negative, got {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------

/// A time span, e.g. `"500ms"`, `"5s"`, `"2m"`, `"1h"` or `0`.
///
/// A unit is mandatory for anything but zero: a bare `5` could mean seconds
/// or milliseconds and guessing wrong turns a timeout into a hang. Accepted
/// units: `ns`, `us`/`µs`, `ms`, `s`, `m`/`min`, `h`, `d`; fractions such as
/// `"1.5s"` are allowed. Wraps [`std::time::Duration`] (use [`Duration::get`]
/// or deref) and serializes back to the largest exact unit (`"2m"`, `"90s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// Zero, i.e. "disabled" / "no wait" for the keys that allow it.
    pub const ZERO: Duration = Duration(StdDuration::ZERO);
    /// `n` milliseconds.
    pub const fn from_millis(n: u64) -> Self {
        Duration(StdDuration::from_millis(n))
    }
    /// `n` seconds.
    pub const fn from_secs(n: u64) -> Self {
        Duration(StdDuration::from_secs(n))
    }
    /// `n` minutes.
    pub const fn from_mins(n: u64) -> Self {
        Duration(StdDuration::from_secs(n * 60))
    }
    /// The wrapped standard duration.
    pub const fn get(self) -> StdDuration {
        self.0
    }
    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl std::ops::Deref for Duration {
    type Target = StdDuration;
    fn deref(&self) -> &StdDuration {
        &self.0
    }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for StdDuration {
    fn from(d: Duration) -> StdDuration {
        d.0
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

fn duration_unit(unit: &str) -> Option<u128> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" | "sec" => NANOS_PER_SEC,
        "m" | "min" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// Parses a duration string; see [`Duration`] for the syntax.
pub fn parse_duration(text: &str) -> Result<StdDuration, String> {
    let (int, frac, unit) = split_number("duration", text)?;
    if unit.is_empty() {
        let zero =
            int.bytes().all(|b| b == b'0') && frac.is_none_or(|f| f.bytes().all(|b| b == b'0'));
        if zero {
            return Ok(StdDuration::ZERO);
        }
        return Err(format!(
            "duration {text:?} has no unit (write e.g. \"{}s\" or \"{}ms\")",
            text.trim(),
            text.trim()
        ));
    }
    let mult = duration_unit(unit).ok_or_else(|| {
        format!(
            "invalid duration {text:?}: unknown unit {unit:?} (use one of ns, us, ms, s, m, h, d)"
        )
    })?;
    let nanos = scale(int, frac, mult)
        .filter(|n| n / NANOS_PER_SEC <= u128::from(u64::MAX))
        .ok_or_else(|| format!("duration {text:?} is too large"))?;
    Ok(StdDuration::new(
        (nanos / NANOS_PER_SEC) as u64,
        (nanos % NANOS_PER_SEC) as u32,
    ))
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Duration)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        const UNITS: [(u128, &str); 6] = [
            (3600 * NANOS_PER_SEC, "h"),
            (60 * NANOS_PER_SEC, "m"),
            (NANOS_PER_SEC, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        for (mult, unit) in UNITS {
            if nanos.is_multiple_of(mult) {
                return write!(f, "{}{unit}", nanos / mult);
            }
        }
        unreachable!("every duration is a whole number of nanoseconds")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"500ms\", \"5s\", \"2m\" or \"1h\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration::ZERO)
                } else {
                    Err(E::custom(format!(
                        "duration {v} has no unit (write e.g. \"{v}s\" or \"{v}ms\")"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                if v < 0 {
                    Err(E::custom(format!("duration cannot be negative, got {v}")))
                } else {
                    self.visit_u64(v as u64)
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Secret
// ---------------------------------------------------------------------------

/// A password, key or credential secret.
///
/// The value is only reachable through [`Secret::expose`], so it cannot leak
/// through `{:?}`, tracing fields or `ringfs config show`: `Debug` and
/// `Serialize` print `"***"` when it is set and `""` when it is not.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// What a set secret looks like in any output.
pub const REDACTED: &str = "***";

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is sent to the service.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether a non-empty value was configured.
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
    fn redacted(&self) -> &'static str {
        if self.is_set() {
            REDACTED
        } else {
            ""
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

// ---------------------------------------------------------------------------
// Optional paths
// ---------------------------------------------------------------------------

/// `Option<PathBuf>` as a TOML string where `""` means "not set", so that
/// `config show` can print every key (TOML has no null).
pub(crate) mod opt_path {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_str(&p.to_string_lossy()),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let s = String::deserialize(d)?;
        Ok(from_text(&s))
    }

    pub fn from_text(s: &str) -> Option<PathBuf> {
        (!s.is_empty()).then(|| PathBuf::from(s))
    }
}

/// `PathBuf` serialized lossily, so a non-UTF-8 path can never make
/// `config show` fail.
pub(crate) mod lossy_path {
    use super::*;

    pub fn serialize<S: Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string_lossy())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        PathBuf::deserialize(d)
    }
}

// ---------------------------------------------------------------------------
// Sections must be tables
// ---------------------------------------------------------------------------

/// Deserializes a section, accepting only a TOML table.
///
/// serde's derived struct visitors also accept a *sequence* (fields by
/// position), which would make `[[etcd]]` or `etcd = []` silently mean
/// "defaults". This wraps the deserializer so the derived visitor only ever
/// sees a map, keeping serde_path_to_error's key tracking intact (the map
/// access it hands out is passed straight through).
pub(crate) fn table<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(TableOnly(d))
}

struct TableOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TableOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(MapOnly(v))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, MapOnly(v))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

struct MapOnly<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for MapOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

// ---------------------------------------------------------------------------
// Closed enums
// ---------------------------------------------------------------------------

/// Defines a string-valued enum whose parse error lists the allowed values
/// (`expected one of public, internal, admin, got "private"`), matched
/// ASCII-case-insensitively.
macro_rules! config_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted spelling, in documentation order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The canonical spelling used in the config file.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $( if s.eq_ignore_ascii_case($text) { return Ok($name::$variant); } )+
                Err(format!("expected one of {}, got {:?}", Self::ALL.join(", "), s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "one of {}", $name::ALL.join(", "))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

config_enum! {
    /// How the Swift client authenticates.
    pub enum SwiftAuth {
        /// Swift's built-in TempAuth / v1 auth (`X-Auth-User`/`X-Auth-Key`).
        #[default]
        TempAuth => "tempauth",
        /// OpenStack Keystone v3 (password or application credential).
        Keystone => "keystone",
    }
}

config_enum! {
    /// Which Keystone catalog endpoint of the object-store service to use.
    pub enum Interface {
        /// The public endpoint.
        #[default]
        Public => "public",
        /// The internal (usually unmetered, in-cloud) endpoint.
        Internal => "internal",
        /// The admin endpoint.
        Admin => "admin",
    }
}

config_enum! {
    /// How workers do local disk I/O on the cache.
    pub enum IoEngine {
        /// io_uring when the kernel supports it, otherwise psync.
        #[default]
        Auto => "auto",
        /// Always io_uring (fails at mount if unavailable).
        Uring => "uring",
        /// Positional read/write syscalls from a thread pool.
        Psync => "psync",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_accept_documented_forms() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("0B", 0),
            ("4096", 4096),
            ("64MiB", 64 << 20),
            ("4 KiB", 4 << 10),
            ("1G", 1 << 30),
            ("10GiB", 10 << 30),
            ("512k", 512 << 10),
            ("512K", 512 << 10),
            ("1KB", 1000),
            ("1kb", 1000),
            ("3MB", 3_000_000),
            ("1.5MiB", 1_572_864),
            ("0.5k", 512),
            ("0.1KiB", 102), // rounded down
            ("  4KiB\t", 4096),
            ("64TiB", 64 << 40),
            ("15EiB", 15 << 60),
            ("18446744073709551615", u64::MAX),
            ("1.000000000000000000000001k", 1024),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn sizes_reject_bad_input() {
        let cases: &[(&str, &str)] = &[
            ("", "empty size"),
            ("   ", "empty size"),
            ("-1", "cannot be negative"),
            ("-4KiB", "cannot be negative"),
            ("12 parsecs", "unknown unit \"parsecs\""),
            ("MiB", "expected a number"),
            (".5k", "expected a number"),
            ("1.k", "expected digits after '.'"),
            ("1..5k", "expected digits after '.'"),
            ("1.5", "whole number"),
            ("1e3", "unknown unit \"e3\""),
            ("18446744073709551616", "too large"),
            ("16EiB", "too large"),
            ("99999999999999999999999999999999999999999", "too large"),
            ("+5", "expected a number"),
            ("5 Mi B", "unknown unit"),
        ];
        for (text, want) in cases {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn size_display_is_exact_and_short() {
        assert_eq!(ByteSize(0).to_string(), "0B");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
        assert_eq!(ByteSize::kib(4).to_string(), "4KiB");
        assert_eq!(ByteSize::mib(64).to_string(), "64MiB");
        assert_eq!(ByteSize::kib(1536).to_string(), "1536KiB");
        assert_eq!(ByteSize::gib(10).to_string(), "10GiB");
        assert_eq!(ByteSize::tib(64).to_string(), "64TiB");
        assert_eq!(ByteSize(u64::MAX).to_string(), format!("{}B", u64::MAX));
    }

    #[test]
    fn durations_accept_documented_forms() {
        let cases: &[(&str, StdDuration)] = &[
            ("0", StdDuration::ZERO),
            ("0.0", StdDuration::ZERO),
            ("000", StdDuration::ZERO),
            ("0s", StdDuration::ZERO),
            ("0ms", StdDuration::ZERO),
            ("500ms", StdDuration::from_millis(500)),
            ("5s", StdDuration::from_secs(5)),
            ("5 s", StdDuration::from_secs(5)),
            (" 2m ", StdDuration::from_secs(120)),
            ("2min", StdDuration::from_secs(120)),
            ("1h", StdDuration::from_secs(3600)),
            ("1d", StdDuration::from_secs(86400)),
            ("1.5s", StdDuration::from_millis(1500)),
            ("250us", StdDuration::from_micros(250)),
            ("7ns", StdDuration::from_nanos(7)),
            ("5S", StdDuration::from_secs(5)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn durations_reject_bad_input() {
        let cases: &[(&str, &str)] = &[
            ("", "empty duration"),
            (" ", "empty duration"),
            ("-1s", "cannot be negative"),
            ("5", "has no unit"),
            ("1.5", "has no unit"),
            ("5x", "unknown unit \"x\""),
            ("s", "expected a number"),
            ("1.s", "expected digits"),
            ("99999999999999999999999h", "too large"),
            ("18446744073709551616s", "too large"),
        ];
        for (text, want) in cases {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
        // The largest representable duration still parses.
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(StdDuration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn duration_display_uses_largest_exact_unit() {
        assert_eq!(Duration::ZERO.to_string(), "0s");
        assert_eq!(Duration::from_millis(500).to_string(), "500ms");
        assert_eq!(Duration::from_secs(90).to_string(), "90s");
        assert_eq!(Duration::from_secs(120).to_string(), "2m");
        assert_eq!(Duration::from_secs(7200).to_string(), "2h");
        assert_eq!(
            Duration(StdDuration::from_nanos(1_500)).to_string(),
            "1500ns"
        );
    }

    #[test]
    fn enums_parse_case_insensitively_and_list_choices() {
        assert_eq!("Internal".parse::<Interface>(), Ok(Interface::Internal));
        assert_eq!("keystone".parse::<SwiftAuth>(), Ok(SwiftAuth::Keystone));
        assert_eq!(
            "private".parse::<Interface>().unwrap_err(),
            r#"expected one of public, internal, admin, got "private""#
        );
        assert_eq!(IoEngine::default(), IoEngine::Auto);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }

    proptest! {
        #[test]
        fn size_display_round_trips(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&ByteSize(n).to_string()), Ok(n));
        }

        #[test]
        fn size_binary_units_round_trip(n in 0u64..1024, shift in 0u32..6) {
            let b = ByteSize(n << (10 * shift));
            prop_assert_eq!(b.to_string().parse::<ByteSize>(), Ok(b));
        }

        #[test]
        fn duration_display_round_trips(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration(StdDuration::new(secs, nanos));
            prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
        }
    }
}
