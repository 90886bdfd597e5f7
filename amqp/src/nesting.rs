//! A bound on how deep field tables and arrays nest in what a peer sends.
//!
//! amq-protocol's parser recurses once per nested table or array: about 1.5 KB of stack a
//! level in a release build and 9 KB in a debug one, while a level costs the sender only five
//! bytes (`A` and a length). One 25 KB frame of nested arrays (a queue.declare's arguments, a
//! publish's headers, or connection.start-ok's client properties before any login) overflowed
//! the 2 MiB stack of a tokio worker and aborted the whole broker. So the wire form is walked
//! first, without recursion, and anything nested deeper than [`MAX_NESTING`] is refused before
//! the parser sees it. Real clients nest two or three levels (x-death is an array of tables).

/// The most levels of field tables and arrays accepted, the outermost table counting as one.
pub const MAX_NESTING: usize = 64;

/// Whether the field table at the start of `bytes` (its length prefix first) nests at most
/// [`MAX_NESTING`] levels. Bytes that are not a well-formed table pass: the parser rejects them
/// at the first flaw, before it recurses into anything after it, and everything before it has
/// been walked here.
pub fn table_within_limit(bytes: &[u8]) -> bool {
    let Some(end) = container_end(bytes, 0, bytes.len()) else {
        return true;
    };
    // The end offset of each open table or array, and whether it is a table (whose entries
    // start with a key): on the stack, so a publish's headers cost no allocation.
    let mut open = [(0usize, false); MAX_NESTING];
    open[0] = (end, true);
    let mut depth = 1;
    let mut pos = 4;
    while depth > 0 {
        let (end, is_table) = open[depth - 1];
        if pos == end {
            depth -= 1;
            continue;
        }
        if is_table {
            // The key, a short string.
            pos += 1 + usize::from(bytes[pos]);
            if pos >= end {
                return true;
            }
        }
        let kind = bytes[pos];
        pos += 1;
        let fixed = match kind {
            b't' | b'b' | b'B' => 1,
            b's' | b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'L' | b'l' | b'd' | b'T' => 8,
            b'V' => 0,
            b'S' | b'x' => match container_end(bytes, pos, end) {
                Some(after) => {
                    pos = after;
                    continue;
                }
                None => return true,
            },
            b'A' | b'F' => match container_end(bytes, pos, end) {
                Some(after) => {
                    if depth == MAX_NESTING {
                        return false;
                    }
                    open[depth] = (after, kind == b'F');
                    depth += 1;
                    pos += 4;
                    continue;
                }
                None => return true,
            },
            // Not a field type: the parser stops here.
            _ => return true,
        };
        pos += fixed;
        if pos > end {
            return true;
        }
    }
    true
}

/// Where a length-prefixed item at `pos` ends, if its prefix and contents fit before `limit`.
fn container_end(bytes: &[u8], pos: usize, limit: usize) -> Option<usize> {
    let prefix = bytes.get(pos..pos.checked_add(4)?)?;
    let len = u32::from_be_bytes(prefix.try_into().ok()?) as usize;
    let end = pos.checked_add(4)?.checked_add(len)?;
    (end <= limit).then_some(end)
}

/// The arguments before a method's field table, for the methods that carry one.
#[derive(Clone, Copy)]
enum Arg {
    Octet,
    Short,
    ShortStr,
}

fn table_position(class_id: u16, method_id: u16) -> Option<&'static [Arg]> {
    use Arg::*;
    Some(match (class_id, method_id) {
        // connection.start: version major and minor, then server properties.
        (10, 10) => &[Octet, Octet],
        // connection.start-ok: client properties first.
        (10, 11) => &[],
        // exchange.declare: ticket, exchange, type, flags.
        (40, 10) => &[Short, ShortStr, ShortStr, Octet],
        // exchange.bind and unbind: ticket, destination, source, routing key, nowait.
        (40, 30) | (40, 40) => &[Short, ShortStr, ShortStr, ShortStr, Octet],
        // queue.declare: ticket, queue, flags.
        (50, 10) => &[Short, ShortStr, Octet],
        // queue.bind: ticket, queue, exchange, routing key, nowait.
        (50, 20) => &[Short, ShortStr, ShortStr, ShortStr, Octet],
        // queue.unbind: ticket, queue, exchange, routing key (no nowait).
        (50, 50) => &[Short, ShortStr, ShortStr, ShortStr],
        // basic.consume: ticket, queue, consumer tag, flags.
        (60, 20) => &[Short, ShortStr, ShortStr, Octet],
        _ => return None,
    })
}

/// Skips `args` from the start of `bytes`; `None` if they do not fit.
fn skip(bytes: &[u8], args: &[Arg]) -> Option<usize> {
    let mut pos = 0usize;
    for arg in args {
        pos += match arg {
            Arg::Octet => 1,
            Arg::Short => 2,
            Arg::ShortStr => 1 + usize::from(*bytes.get(pos)?),
        };
    }
    (pos <= bytes.len()).then_some(pos)
}

/// Whether a method's arguments (the payload after class and method ids) nest within
/// [`MAX_NESTING`]. Every method with a field table is checked, including the server's own
/// (a client may send connection.start too: it is parsed before it is refused).
pub fn method_within_limit(class_id: u16, method_id: u16, arguments: &[u8]) -> bool {
    let Some(args) = table_position(class_id, method_id) else {
        return true;
    };
    match skip(arguments, args) {
        Some(at) => table_within_limit(&arguments[at..]),
        None => true,
    }
}

/// Whether content header properties (flags, then the list) nest within [`MAX_NESTING`]:
/// only `headers`, the third property, is a table.
pub fn properties_within_limit(properties: &[u8]) -> bool {
    let Some(flags) = properties.get(..2) else {
        return true;
    };
    let flags = u16::from_be_bytes([flags[0], flags[1]]);
    if flags & (1 << 13) == 0 {
        return true;
    }
    let before: &[Arg] = match (flags & (1 << 15) != 0, flags & (1 << 14) != 0) {
        (true, true) => &[Arg::ShortStr, Arg::ShortStr],
        (true, false) | (false, true) => &[Arg::ShortStr],
        (false, false) => &[],
    };
    match skip(&properties[2..], before) {
        Some(at) => table_within_limit(&properties[2 + at..]),
        None => true,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A table `{"k": [[...[V]...]]}`: the table and `arrays` arrays inside it.
    pub(crate) fn nested_table(arrays: usize) -> Vec<u8> {
        let mut value = vec![b'V'];
        for _ in 0..arrays {
            let mut outer = vec![b'A'];
            outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
            outer.extend_from_slice(&value);
            value = outer;
        }
        let mut entries = vec![1, b'k'];
        entries.extend_from_slice(&value);
        let mut table = (entries.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&entries);
        table
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_one_more_does_not() {
        assert!(table_within_limit(&nested_table(MAX_NESTING - 1)));
        assert!(!table_within_limit(&nested_table(MAX_NESTING)));
        assert!(!table_within_limit(&nested_table(30_000)));
    }

    #[test]
    fn tables_nested_in_tables_count_too() {
        // {"a": {"a": ... {}}}: 1 + levels tables.
        let nested = |levels: usize| {
            let mut table = vec![0, 0, 0, 0];
            for _ in 0..levels {
                let mut entries = vec![1, b'a', b'F'];
                entries.extend_from_slice(&table);
                table = (entries.len() as u32).to_be_bytes().to_vec();
                table.extend_from_slice(&entries);
            }
            table
        };
        assert!(table_within_limit(&nested(MAX_NESTING - 1)));
        assert!(!table_within_limit(&nested(MAX_NESTING)));
    }

    #[test]
    fn every_scalar_type_is_stepped_over() {
        let mut entries = Vec::new();
        for (kind, len) in [
            (b't', 1),
            (b'b', 1),
            (b'B', 1),
            (b's', 2),
            (b'U', 2),
            (b'u', 2),
            (b'I', 4),
            (b'i', 4),
            (b'f', 4),
            (b'D', 5),
            (b'L', 8),
            (b'l', 8),
            (b'd', 8),
            (b'T', 8),
            (b'V', 0),
        ] {
            entries.extend_from_slice(&[1, b'k', kind]);
            // Bytes that would read as a deep array if a size were wrong.
            entries.extend(std::iter::repeat_n(b'A', len));
        }
        entries.extend_from_slice(&[1, b'k', b'S', 0, 0, 0, 2, b'A', b'A']);
        entries.extend_from_slice(&[1, b'k', b'x', 0, 0, 0, 1, b'A']);
        let deep = nested_table(MAX_NESTING);
        entries.extend_from_slice(&[1, b'k', b'F']);
        entries.extend_from_slice(&deep);
        let mut table = (entries.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&entries);
        assert!(
            !table_within_limit(&table),
            "the deep table after the scalars is found"
        );
        let parsed = amq_protocol::types::parsing::parse_field_table(&table[..]);
        assert!(
            parsed.is_ok(),
            "the walk agrees with the parser on the layout"
        );
    }

    #[test]
    fn malformed_tables_are_left_to_the_parser() {
        assert!(table_within_limit(&[]));
        assert!(table_within_limit(&[0, 0, 0, 9, 1]));
        assert!(table_within_limit(&[0, 0, 0, 3, 1, b'k', b'?']));
        // A nested array whose length runs past its table: never parsed.
        assert!(table_within_limit(&[
            0, 0, 0, 8, 1, b'k', b'A', 0, 0, 0, 9, b'V'
        ]));
    }
}
