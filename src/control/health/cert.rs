//! The one date a TLS check reads from a server's certificate: its
//! `notAfter`, for the expiry warning.
//!
//! Why a few lines of DER here rather than an X.509 crate: the path is
//! fixed and short (RFC 5280, section 4.1):
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, ... }
//! TBSCertificate ::= SEQUENCE {
//!     version [0] EXPLICIT Version DEFAULT v1,
//!     serialNumber INTEGER, signature AlgorithmIdentifier,
//!     issuer Name, validity Validity, ... }
//! Validity ::= SEQUENCE { notBefore Time, notAfter Time }
//! Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }
//! ```
//!
//! so a walker over tag-length-value headers that skips whole elements
//! does it, bounded by the input, without allocating, and never panicking
//! on the bytes a server sends (a property test feeds it random ones),
//! where `x509-parser` would bring a dozen crates for one field. rustls
//! has already checked the handshake's signature with this certificate's
//! key (and, with `tls_verify`, the whole chain), so a certificate that
//! gets here was at least parsed by webpki once.

use std::fmt;

/// Why a certificate's `notAfter` could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BadCertificate(&'static str);

impl fmt::Display for BadCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
/// `[0]` constructed, context-specific: the explicit `version`.
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its contents, and what follows it.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    rest: &'a [u8],
}

/// The element at the start of `input` (single-byte tags and definite
/// lengths of up to four bytes: DER, and enough for any certificate).
fn element(input: &[u8]) -> Result<Element<'_>, BadCertificate> {
    let truncated = BadCertificate("truncated DER");
    let (&tag, rest) = input.split_first().ok_or(truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(BadCertificate("multi-byte DER tag"));
    }
    let (&first, mut rest) = rest.split_first().ok_or(truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(BadCertificate("unsupported DER length"));
        }
        let (bytes, after) = rest.split_at_checked(n).ok_or(truncated)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (contents, rest) = rest.split_at_checked(len).ok_or(truncated)?;
    Ok(Element {
        tag,
        contents,
        rest,
    })
}

/// The element at the start of `input`, which must have tag `tag`.
fn expect<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<Element<'a>, BadCertificate> {
    let e = element(input)?;
    if e.tag == tag {
        Ok(e)
    } else {
        Err(BadCertificate(what))
    }
}

/// The `notAfter` of a DER X.509 certificate, in seconds since the Unix
/// epoch (negative before 1970).
pub(super) fn not_after(der: &[u8]) -> Result<i64, BadCertificate> {
    let cert = expect(der, SEQUENCE, "not a certificate (no outer SEQUENCE)")?;
    let tbs = expect(cert.contents, SEQUENCE, "no TBSCertificate")?;
    let mut fields = tbs.contents;
    if fields.first() == Some(&VERSION) {
        fields = element(fields)?.rest;
    }
    let serial = expect(fields, INTEGER, "no serial number")?;
    let signature = expect(serial.rest, SEQUENCE, "no signature algorithm")?;
    let issuer = expect(signature.rest, SEQUENCE, "no issuer")?;
    let validity = expect(issuer.rest, SEQUENCE, "no validity")?;
    let not_before = element(validity.contents)?;
    let not_after = element(not_before.rest)?;
    time(not_after.tag, not_after.contents)
}

/// A `Time` (UTCTime or GeneralizedTime, in DER's `...Z` form) in seconds
/// since the Unix epoch.
fn time(tag: u8, text: &[u8]) -> Result<i64, BadCertificate> {
    let bad = BadCertificate("malformed notAfter time");
    let (year, rest) = match tag {
        // YYMMDDHHMMSSZ; RFC 5280: YY >= 50 is 19YY, else 20YY.
        UTC_TIME if text.len() == 13 => {
            let yy = digits(&text[..2]).ok_or(bad)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        // YYYYMMDDHHMMSSZ.
        GENERALIZED_TIME if text.len() == 15 => (digits(&text[..4]).ok_or(bad)?, &text[4..]),
        UTC_TIME | GENERALIZED_TIME => return Err(bad),
        _ => return Err(BadCertificate("notAfter is not a time")),
    };
    if rest.get(10) != Some(&b'Z') {
        return Err(bad);
    }
    let field = |at: usize| digits(&rest[at..at + 2]).ok_or(bad);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad);
    }
    let days = days_since_epoch(year, month, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The value of ASCII decimal digits (at most four here), `None` if any
/// byte is not a digit.
fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian; month
/// 1 to 12): whole years counted with their leap days, then the months of
/// the last year.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    // Leap years in [1, y]: multiples of 4, less those of 100, plus those
    // of 400.
    let leaps_to = |y: i64| y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400);
    let years = (year - 1970) * 365 + leaps_to(year - 1) - leaps_to(1969);
    let months: i64 = (1..month).map(|m| days_in_month(year, m)).sum();
    years + months + day - 1
}

/// `seconds` since the Unix epoch as `2026-12-06 11:53:00 UTC`, for logs.
pub(super) fn format_utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    // The year: estimate, then step to the one holding `days` (the
    // estimate is late before 1970, early after).
    let mut year = 1970 + days.div_euclid(366);
    while days_since_epoch(year, 1, 1) > days {
        year -= 1;
    }
    while days_since_epoch(year + 1, 1, 1) <= days {
        year += 1;
    }
    let mut left = days - days_since_epoch(year, 1, 1);
    let mut month = 1;
    while left >= days_in_month(year, month) {
        left -= days_in_month(year, month);
        month += 1;
    }
    format!(
        "{year:04}-{month:02}-{:02} {:02}:{:02}:{:02} UTC",
        left + 1,
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A v3 certificate made by `openssl req -x509 ... -days 36500`
    /// (tests/fixtures/tls/README.md): notAfter a GeneralizedTime.
    const OPENSSL_DER: &[u8] = include_bytes!("../../../tests/fixtures/tls/openssl-cert.der");
    /// A v1 certificate (no `version` field) made by `openssl x509 -req
    /// ... -days 1`: notAfter a UTCTime.
    const OPENSSL_V1_DER: &[u8] = include_bytes!("../../../tests/fixtures/tls/openssl-v1.der");

    #[test]
    fn reads_not_after_of_an_openssl_certificate() {
        let t = not_after(OPENSSL_DER).unwrap();
        assert_eq!(format_utc(t), "2126-11-09 11:58:01 UTC");
    }

    #[test]
    fn reads_not_after_of_a_v1_certificate_without_a_version_field() {
        let t = not_after(OPENSSL_V1_DER).unwrap();
        assert_eq!(format_utc(t), "2026-12-04 11:58:01 UTC");
    }

    #[test]
    fn utc_time_years_before_50_are_in_the_2000s() {
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Ok(2524607999));
        assert_eq!(time(UTC_TIME, b"500101000000Z"), Ok(-631152000));
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Ok(0));
    }

    #[test]
    fn generalized_time_is_read_to_the_second() {
        assert_eq!(time(GENERALIZED_TIME, b"20000229120000Z"), Ok(951825600));
        assert_eq!(time(GENERALIZED_TIME, b"99991231235959Z"), Ok(253402300799));
    }

    #[test]
    fn impossible_dates_are_refused() {
        for t in [
            &b"20230229000000Z"[..],
            b"20231301000000Z",
            b"20230100000000Z",
            b"20230101240000Z",
            b"20230101006000Z",
            b"2023010100000Z",
            b"20230101000000+",
            b"2023-101000000Z",
        ] {
            assert!(time(GENERALIZED_TIME, t).is_err(), "{t:?}");
        }
        assert!(time(0x04, b"20230101000000Z").is_err());
    }

    #[test]
    fn truncated_certificates_are_errors_not_panics() {
        for n in 0..OPENSSL_DER.len() {
            assert!(not_after(&OPENSSL_DER[..n]).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn formats_dates_around_leap_days_and_the_epoch() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951825600), "2000-02-29 12:00:00 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_utc(-600_825_600), "1950-12-18 00:00:00 UTC");
        assert_eq!(format_utc(253402300799), "9999-12-31 23:59:59 UTC");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = not_after(&bytes);
        }

        #[test]
        fn mutated_certificates_never_panic(at in 0usize..4096, byte in any::<u8>()) {
            let mut der = OPENSSL_DER.to_vec();
            let at = at % der.len();
            der[at] = byte;
            let _ = not_after(&der);
        }

        #[test]
        fn generalized_times_round_trip_through_the_formatter(
            year in 1950i64..10000, month in 1i64..=12, day in 1i64..=28,
            hour in 0i64..24, minute in 0i64..60, second in 0i64..60,
        ) {
            let text = format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}Z");
            let t = time(GENERALIZED_TIME, text.as_bytes()).unwrap();
            prop_assert_eq!(
                format_utc(t),
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
            );
        }
    }
}
