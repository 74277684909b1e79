//! The DNS messages a `dns` check sends and reads (RFC 1035 4.1): a query
//! of one question, and the parts of an answer the verdict needs (its id,
//! QR bit, RCODE, answer count and the question it echoes).
//!
//! Pure: bytes in, values out. Every read of a reply is bounds-checked and
//! a compressed name follows at most `MAX_POINTERS` pointers, so no reply,
//! however made, can panic or loop.

/// The fixed header's length.
pub const HEADER_LEN: usize = 12;
/// QCLASS IN.
const CLASS_IN: u16 = 1;
/// Flags of a query: RD (recursion desired), opcode QUERY.
const FLAGS_RD: u16 = 0x0100;
/// QR: set in a response.
const FLAG_QR: u16 = 0x8000;
/// TC: the answer was truncated.
const FLAG_TC: u16 = 0x0200;
/// Longest encoded name (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// Most compression pointers followed in one name.
const MAX_POINTERS: usize = 16;

/// Why a reply could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than a header, or a field runs past the end.
    Truncated,
    /// A name that is too long, loops or uses a reserved label type.
    BadName,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::Truncated => "truncated message",
            Malformed::BadName => "malformed name",
        })
    }
}

/// A name as lower-case labels, for case-insensitive comparison (RFC 4343).
pub type Labels = Vec<Vec<u8>>;

/// The labels of a dotted name (`"svc.example.org."`; `"."` or `""` is the
/// root), lower-cased; `None` when a label is empty or longer than 63
/// bytes or the name longer than 255 encoded.
pub fn labels(name: &str) -> Option<Labels> {
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.is_empty() {
        return Some(Vec::new());
    }
    let labels: Labels = body
        .split('.')
        .map(|l| l.as_bytes().to_ascii_lowercase())
        .collect();
    let encoded: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
    (labels.iter().all(|l| (1..=63).contains(&l.len())) && encoded <= MAX_NAME).then_some(labels)
}

/// A query with id `id` for `name` (as [`labels`] reads it) of type
/// `qtype`, class IN, recursion desired; `None` for a name `labels`
/// refuses.
pub fn query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let labels = labels(name)?;
    let mut out = Vec::with_capacity(HEADER_LEN + MAX_NAME + 4);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAGS_RD.to_be_bytes());
    // QDCOUNT 1, ANCOUNT, NSCOUNT, ARCOUNT 0.
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for l in &labels {
        // At most 63 (checked by `labels`).
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(out)
}

/// What a check reads of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The id, which must be the query's.
    pub id: u16,
    /// QR: a response, not a query.
    pub response: bool,
    /// TC: cut to fit a datagram.
    pub truncated: bool,
    /// RCODE (the low 4 bits of the flags).
    pub rcode: u8,
    /// ANCOUNT: records in the answer section.
    pub answers: u16,
    /// The first question (name, QTYPE, QCLASS), when there is one.
    pub question: Option<(Labels, u16, u16)>,
}

impl Reply {
    /// Whether this reply's question is `labels`/`qtype`/IN (a server may
    /// leave the question out of an error reply: then only the id ties it
    /// to the query).
    pub fn asks(&self, labels: &Labels, qtype: u16) -> bool {
        match &self.question {
            None => true,
            Some((l, t, c)) => l == labels && *t == qtype && *c == CLASS_IN,
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, Malformed> {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(Malformed::Truncated),
    }
}

/// Reads the name at `at`: its labels and the offset just past it where
/// it starts (a pointer ends it).
fn name_at(b: &[u8], mut at: usize) -> Result<(Labels, usize), Malformed> {
    let mut labels = Vec::new();
    let mut length = 1;
    let mut end = None;
    let mut pointers = 0;
    loop {
        let len = *b.get(at).ok_or(Malformed::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok((labels, end.unwrap_or(at + 1))),
            0x00 => {
                let l = usize::from(len);
                let label = b.get(at + 1..at + 1 + l).ok_or(Malformed::Truncated)?;
                length += l + 1;
                if length > MAX_NAME {
                    return Err(Malformed::BadName);
                }
                labels.push(label.to_ascii_lowercase());
                at += 1 + l;
            }
            0xc0 => {
                let target = usize::from(u16_at(b, at)? & 0x3fff);
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(Malformed::BadName);
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            // 0x40 and 0x80: extended and reserved label types.
            _ => return Err(Malformed::BadName),
        }
    }
}

/// Reads a reply's header and first question.
pub fn parse(b: &[u8]) -> Result<Reply, Malformed> {
    if b.len() < HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    let id = u16_at(b, 0)?;
    let flags = u16_at(b, 2)?;
    let questions = u16_at(b, 4)?;
    let answers = u16_at(b, 6)?;
    let question = if questions == 0 {
        None
    } else {
        let (labels, after) = name_at(b, HEADER_LEN)?;
        Some((labels, u16_at(b, after)?, u16_at(b, after + 2)?))
    };
    Ok(Reply {
        id,
        response: flags & FLAG_QR != 0,
        truncated: flags & FLAG_TC != 0,
        // The mask keeps it below 16.
        rcode: (flags & 0x000f) as u8,
        answers,
        question,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A response to `q`: its header with QR and `rcode`, its question,
    /// and `answers` A records pointing back at the question's name.
    fn answer_to(q: &[u8], rcode: u8, answers: u16) -> Vec<u8> {
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r[3] = (r[3] & 0xf0) | rcode;
        r[6..8].copy_from_slice(&answers.to_be_bytes());
        for _ in 0..answers {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
        }
        r
    }

    #[test]
    fn a_query_is_one_question_with_recursion_desired() {
        let q = query(0xbeef, "Svc.Test.", 1).unwrap();
        assert_eq!(
            q,
            [
                0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b's', b'v', b'c', 4, b't', b'e',
                b's', b't', 0, 0, 1, 0, 1
            ]
        );
    }

    #[test]
    fn the_root_is_an_empty_name() {
        let q = query(1, ".", 6).unwrap();
        assert_eq!(&q[HEADER_LEN..], [0, 0, 6, 0, 1]);
    }

    #[test]
    fn names_with_bad_labels_make_no_query() {
        assert_eq!(query(1, "a..b", 1), None);
        assert_eq!(query(1, &"x".repeat(64), 1), None);
        let long = vec!["abcdefghi"; 30].join(".");
        assert_eq!(query(1, &long, 1), None);
    }

    #[test]
    fn a_reply_gives_its_id_code_answers_and_question() {
        let q = query(7, "svc.test", 1).unwrap();
        let r = parse(&answer_to(&q, 0, 2)).unwrap();
        assert_eq!((r.id, r.response, r.rcode, r.answers), (7, true, 0, 2));
        assert!(r.asks(&labels("SVC.test.").unwrap(), 1));
        assert!(!r.asks(&labels("other.test").unwrap(), 1));
        assert!(!r.asks(&labels("svc.test").unwrap(), 28));
    }

    #[test]
    fn nxdomain_is_rcode_3() {
        let q = query(7, "nope.test", 1).unwrap();
        let r = parse(&answer_to(&q, 3, 0)).unwrap();
        assert_eq!((r.rcode, r.answers), (3, 0));
    }

    #[test]
    fn a_query_read_back_is_not_a_response() {
        let r = parse(&query(9, "a.b", 1).unwrap()).unwrap();
        assert!(!r.response);
    }

    #[test]
    fn a_compressed_question_name_is_followed() {
        // Header, then a question whose name is a pointer to a name placed
        // after it (legal, if odd).
        let mut b = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xc0, 18, 0, 1, 0, 1]);
        b.extend_from_slice(&[1, b'a', 0]);
        let r = parse(&b).unwrap();
        assert_eq!(r.question, Some((vec![b"a".to_vec()], 1, 1)));
    }

    #[test]
    fn a_pointer_loop_is_a_bad_name_not_a_hang() {
        let mut b = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xc0, 12]);
        assert_eq!(parse(&b), Err(Malformed::BadName));
    }

    #[test]
    fn short_replies_are_truncated() {
        assert_eq!(parse(&[0; 11]), Err(Malformed::Truncated));
        let mut b = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[3, b'a']);
        assert_eq!(parse(&b), Err(Malformed::Truncated));
    }

    #[test]
    fn an_error_reply_without_a_question_still_parses() {
        let b = [0, 5, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0];
        let r = parse(&b).unwrap();
        assert_eq!((r.id, r.rcode, r.question.clone()), (5, 1, None));
        assert!(r.asks(&labels("x").unwrap(), 1));
    }

    proptest! {
        #[test]
        fn no_reply_bytes_make_parse_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&b);
        }

        #[test]
        fn headers_followed_by_random_bytes_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..300),
            qd in 0u16..3,
        ) {
            let mut b = vec![0, 1, 0x81, 0x80];
            b.extend_from_slice(&qd.to_be_bytes());
            b.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
            b.extend_from_slice(&tail);
            let _ = parse(&b);
        }

        #[test]
        fn every_query_parses_back_to_its_question(
            labels_in in proptest::collection::vec("[a-z0-9-]{1,20}", 0..6),
            id in any::<u16>(),
            qtype in any::<u16>(),
        ) {
            let name = labels_in.join(".");
            let q = query(id, &name, qtype).unwrap();
            let r = parse(&q).unwrap();
            prop_assert_eq!(r.id, id);
            prop_assert!(r.asks(&labels(&name).unwrap(), qtype));
        }
    }
}
