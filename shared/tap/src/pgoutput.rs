//! PostgreSQL's `pgoutput` logical replication messages (protocol version
//! 1), as `pg_logical_slot_peek_binary_changes` returns them: one message
//! per row. Only what the tap needs is kept; other message kinds (types,
//! origins, logical messages) are skipped.

use std::collections::HashMap;

/// Why bytes are not a message the tap understands. The server wrote them,
/// so this means a protocol the tap does not speak, never bad user input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pgoutput: {0}")]
pub struct ProtocolError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// Part of the replica identity (the primary key by default).
    pub key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<Column>,
}

/// One column of a tuple, in the text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    /// A TOASTed value the change did not touch.
    Unchanged,
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        /// Microseconds since 2000-01-01 UTC.
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        /// Where the transaction ends: the slot may advance to here once
        /// it is loaded.
        end_lsn: u64,
    },
    Relation(Relation),
    Insert {
        relation: u32,
        new: Vec<Cell>,
    },
    Update {
        relation: u32,
        new: Vec<Cell>,
    },
    /// `old` holds the key columns (others null) or, under REPLICA
    /// IDENTITY FULL, the whole row.
    Delete {
        relation: u32,
        old: Vec<Cell>,
    },
    Truncate {
        relations: Vec<u32>,
    },
    Other(u8),
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError(format!(
                "message ends {} bytes early",
                n - self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, ProtocolError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| ProtocolError("unterminated string".into()))?;
        let s = String::from_utf8(self.take(end)?.to_vec())
            .map_err(|_| ProtocolError("a name that is not UTF-8".into()))?;
        self.take(1)?;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Cell>, ProtocolError> {
        let n = self.i16()?;
        (0..n)
            .map(|_| match self.u8()? {
                b'n' => Ok(Cell::Null),
                b'u' => Ok(Cell::Unchanged),
                b't' => {
                    let len = self.u32()? as usize;
                    String::from_utf8(self.take(len)?.to_vec())
                        .map(Cell::Text)
                        .map_err(|_| ProtocolError("a text value that is not UTF-8".into()))
                }
                other => Err(ProtocolError(format!(
                    "tuple column kind {:?}: the tap asks for text values",
                    other as char
                ))),
            })
            .collect()
    }
}

pub fn parse(bytes: &[u8]) -> Result<Message, ProtocolError> {
    let mut r = Reader { buf: bytes };
    let kind = r.u8()?;
    Ok(match kind {
        b'B' => {
            let _final_lsn = r.i64()?;
            Message::Begin {
                commit_ts: r.i64()?,
                xid: r.u32()?,
            }
        }
        b'C' => {
            let _flags = r.u8()?;
            let _commit_lsn = r.i64()?;
            Message::Commit {
                end_lsn: r.i64()? as u64,
            }
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let _identity = r.u8()?;
            let n = r.i16()?;
            let columns = (0..n)
                .map(|_| {
                    let flags = r.u8()?;
                    let name = r.string()?;
                    let _type_oid = r.u32()?;
                    let _typmod = r.u32()?;
                    Ok(Column {
                        name,
                        key: flags & 1 == 1,
                    })
                })
                .collect::<Result<_, ProtocolError>>()?;
            Message::Relation(Relation {
                id,
                namespace,
                name,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            expect(&mut r, b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut marker = r.u8()?;
            if marker == b'K' || marker == b'O' {
                r.tuple()?;
                marker = r.u8()?;
            }
            if marker != b'N' {
                return Err(ProtocolError(format!(
                    "update without its new tuple (found {:?})",
                    marker as char
                )));
            }
            Message::Update {
                relation,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let marker = r.u8()?;
            if marker != b'K' && marker != b'O' {
                return Err(ProtocolError(format!(
                    "delete without its old key (found {:?})",
                    marker as char
                )));
            }
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            Message::Truncate {
                relations: (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?,
            }
        }
        other => Message::Other(other),
    })
}

fn expect(r: &mut Reader<'_>, marker: u8) -> Result<(), ProtocolError> {
    match r.u8()? {
        m if m == marker => Ok(()),
        m => Err(ProtocolError(format!(
            "expected {:?}, found {:?}",
            marker as char, m as char
        ))),
    }
}

/// The relations seen so far in one decoding call: the server describes
/// each before its first change in that call.
#[derive(Debug, Default)]
pub struct Relations(HashMap<u32, Relation>);

impl Relations {
    pub fn learn(&mut self, rel: Relation) {
        self.0.insert(rel.id, rel);
    }

    pub fn get(&self, id: u32) -> Result<&Relation, ProtocolError> {
        self.0.get(&id).ok_or_else(|| {
            ProtocolError(format!("a change of relation {id} before its description"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Vec<u8> {
        let mut v = vec![b't'];
        v.extend((s.len() as u32).to_be_bytes());
        v.extend(s.as_bytes());
        v
    }

    #[test]
    fn messages_parse_as_the_protocol_lays_them_out() {
        let mut rel = vec![b'R'];
        rel.extend(16384u32.to_be_bytes());
        rel.extend(b"public\0entity_jsonb\0");
        rel.push(b'd');
        rel.extend(2i16.to_be_bytes());
        for (flags, name) in [(1u8, "tenant_id"), (0, "hot_attrs")] {
            rel.push(flags);
            rel.extend(name.as_bytes());
            rel.push(0);
            rel.extend(20u32.to_be_bytes());
            rel.extend(u32::MAX.to_be_bytes());
        }
        let Message::Relation(r) = parse(&rel).unwrap() else {
            panic!()
        };
        assert_eq!(r.name, "entity_jsonb");
        assert_eq!(
            r.columns,
            [
                Column {
                    name: "tenant_id".into(),
                    key: true
                },
                Column {
                    name: "hot_attrs".into(),
                    key: false
                }
            ]
        );

        let mut upd = vec![b'U'];
        upd.extend(16384u32.to_be_bytes());
        upd.push(b'N');
        upd.extend(2i16.to_be_bytes());
        upd.extend(text("7"));
        upd.push(b'u');
        assert_eq!(
            parse(&upd).unwrap(),
            Message::Update {
                relation: 16384,
                new: vec![Cell::Text("7".into()), Cell::Unchanged]
            }
        );

        let mut commit = vec![b'C', 0];
        commit.extend(10i64.to_be_bytes());
        commit.extend(42i64.to_be_bytes());
        commit.extend(0i64.to_be_bytes());
        assert_eq!(parse(&commit).unwrap(), Message::Commit { end_lsn: 42 });
    }

    #[test]
    fn short_or_foreign_bytes_are_errors_not_panics() {
        for bad in [&b""[..], b"B\0\0", b"I\0\0\0\x01X", b"R\0\0\0\x01public"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse(b"Y").unwrap(), Message::Other(b'Y'));
    }
}
