//! `fields` operations (`FieldMap`) against an independent model.
//!
//! The model is a list of `(lower-case name, value)` pairs with the RFC 9110
//! token and field-value rules written out here, the forbidden-name list, the
//! per-block size limit (`name + value + 32` per entry) and the instance's
//! memory budget. After every operation the implementation's answer (value
//! or error kind) and state must equal the model's, and the host bytes
//! charged to the budget must equal the sum of the live maps' sizes; when
//! every map is dropped, nothing stays charged.

#![no_main]

use arbitrary::Arbitrary;
use berth_http::HeaderError;
use berth_http::fields::{FIELD_ENTRY_OVERHEAD, FORBIDDEN_HEADERS, FieldMap};
use berth_http::memory::HostMemory;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    /// Per-block limit, in accounted bytes.
    block_limit: u16,
    /// The instance's memory budget, in accounted bytes.
    budget: u16,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    New,
    FromList(Vec<(Name, Vec<u8>)>),
    Set(u8, Name, Vec<Vec<u8>>),
    Append(u8, Name, Vec<u8>),
    Delete(u8, Name),
    Get(u8, Name),
    Has(u8, Name),
    Clone(u8),
    Freeze(u8),
    Drop(u8),
}

/// Names drawn mostly from a small set (so operations meet each other),
/// sometimes arbitrary.
#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Any(String),
}

const KNOWN: &[&str] = &[
    "a",
    "B",
    "x-test",
    "X-Test",
    "set-cookie",
    "host",
    "Connection",
    "te",
    "",
    "a b",
    "ü",
    "content-length",
    "Transfer-Encoding",
];

impl Name {
    fn text(&self) -> &str {
        match self {
            Name::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()],
            Name::Any(s) => s,
        }
    }
}

/// RFC 9110 §5.6.2 `token`.
fn model_name(name: &str) -> Option<String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    // The http crate bounds names at 64 KiB - 1.
    if name.is_empty() || name.len() >= 1 << 16 || !name.bytes().all(tchar) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// RFC 9110 §5.5 field value as the http crate takes it: visible ASCII,
/// space, horizontal tab and obs-text; no other control byte, no DEL.
fn model_value_ok(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn entry(name: &str, value: &[u8]) -> usize {
    name.len() + value.len() + FIELD_ENTRY_OVERHEAD
}

#[derive(Debug, Clone, Default)]
struct Model {
    entries: Vec<(String, Vec<u8>)>,
    mutable: bool,
    limit: usize,
}

impl Model {
    fn size(&self) -> usize {
        self.entries.iter().map(|(n, v)| entry(n, v)).sum()
    }

    fn values(&self, name: &str) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn check_mutation(&self, name: &str) -> Result<String, HeaderError> {
        if !self.mutable {
            return Err(HeaderError::Immutable);
        }
        let name = model_name(name).ok_or(HeaderError::InvalidSyntax)?;
        if FORBIDDEN_HEADERS.contains(&name.as_str()) {
            return Err(HeaderError::Forbidden);
        }
        Ok(name)
    }
}

struct Live {
    real: FieldMap,
    model: Model,
}

/// Budget left for host bytes (the model's view of the shared budget).
fn room(budget: usize, live: &[Live]) -> usize {
    budget - live.iter().map(|l| l.model.size()).sum::<usize>()
}

/// What a change of `old` to `new` accounted bytes must answer.
fn resize_outcome(
    model: &Model,
    old: usize,
    new: usize,
    budget: usize,
    live: &[Live],
) -> Result<(), HeaderError> {
    if new > model.limit {
        return Err(HeaderError::SizeExceeded { limit: model.limit });
    }
    if new > old && new - old > room(budget, live) {
        return Err(HeaderError::SizeExceeded { limit: budget });
    }
    Ok(())
}

fn pick(live: &[Live], i: u8) -> Option<usize> {
    (!live.is_empty()).then(|| usize::from(i) % live.len())
}

fn run(input: Input) {
    let budget = usize::from(input.budget);
    let block_limit = usize::from(input.block_limit);
    let memory = HostMemory::new(budget);
    let mut live: Vec<Live> = Vec::new();
    for op in input.ops.into_iter().take(200) {
        match op {
            Op::New => {
                let real = FieldMap::new_mutable(block_limit)
                    .charged(&memory)
                    .expect("an empty map costs nothing");
                let model = Model {
                    entries: vec![],
                    mutable: true,
                    limit: block_limit,
                };
                live.push(Live { real, model });
            }
            Op::FromList(list) => {
                // Expected: appended one by one, the first failure wins.
                let mut model = Model {
                    entries: vec![],
                    mutable: true,
                    limit: block_limit,
                };
                let mut expected = Ok(());
                for (name, value) in &list {
                    let step = model.check_mutation(name.text()).and_then(|name| {
                        if !model_value_ok(value) {
                            return Err(HeaderError::InvalidSyntax);
                        }
                        let old = model.size();
                        let new = old + entry(&name, value);
                        // Not charged until the whole list is in.
                        if new > model.limit {
                            return Err(HeaderError::SizeExceeded { limit: model.limit });
                        }
                        Ok(name)
                    });
                    match step {
                        Ok(name) => model.entries.push((name, value.clone())),
                        Err(e) => {
                            expected = Err(e);
                            break;
                        }
                    }
                }
                let entries = list.iter().map(|(n, v)| (n.text().to_owned(), v.clone()));
                let real = FieldMap::from_list(entries, block_limit);
                match (real, expected) {
                    (Ok(real), Ok(())) => {
                        let fits = model.size() <= room(budget, &live);
                        match real.charged(&memory) {
                            Ok(real) => {
                                assert!(fits, "charged beyond the budget");
                                live.push(Live { real, model });
                            }
                            Err(_) => assert!(!fits, "refused within the budget"),
                        }
                    }
                    (Err(got), Err(want)) => assert_eq!(got, want),
                    (got, want) => panic!("from-list: got {got:?}, model says {want:?}"),
                }
            }
            Op::Set(i, name, values) => {
                let Some(i) = pick(&live, i) else { continue };
                let want = live[i].model.check_mutation(name.text()).and_then(|n| {
                    if !values.iter().all(|v| model_value_ok(v)) {
                        return Err(HeaderError::InvalidSyntax);
                    }
                    let old = live[i].model.size();
                    let removed: usize =
                        live[i].model.values(&n).iter().map(|v| entry(&n, v)).sum();
                    let added: usize = values.iter().map(|v| entry(&n, v)).sum();
                    resize_outcome(&live[i].model, old, old - removed + added, budget, &live)?;
                    Ok(n)
                });
                let got = live[i].real.set(name.text(), &values);
                match (got, want) {
                    (Ok(()), Ok(n)) => {
                        let m = &mut live[i].model;
                        // HeaderMap keeps a replaced name where it was.
                        m.entries.retain(|(k, _)| *k != n);
                        m.entries.extend(values.into_iter().map(|v| (n.clone(), v)));
                    }
                    (Err(got), Err(want)) => assert_eq!(got, want),
                    (got, want) => panic!("set: got {got:?}, model says {want:?}"),
                }
            }
            Op::Append(i, name, value) => {
                let Some(i) = pick(&live, i) else { continue };
                let want = live[i].model.check_mutation(name.text()).and_then(|n| {
                    if !model_value_ok(&value) {
                        return Err(HeaderError::InvalidSyntax);
                    }
                    let old = live[i].model.size();
                    resize_outcome(&live[i].model, old, old + entry(&n, &value), budget, &live)?;
                    Ok(n)
                });
                match (live[i].real.append(name.text(), &value), want) {
                    (Ok(()), Ok(n)) => live[i].model.entries.push((n, value)),
                    (Err(got), Err(want)) => assert_eq!(got, want),
                    (got, want) => panic!("append: got {got:?}, model says {want:?}"),
                }
            }
            Op::Delete(i, name) => {
                let Some(i) = pick(&live, i) else { continue };
                let want = live[i].model.check_mutation(name.text());
                match (live[i].real.delete(name.text()), want) {
                    (Ok(()), Ok(n)) => live[i].model.entries.retain(|(k, _)| *k != n),
                    (Err(got), Err(want)) => assert_eq!(got, want),
                    (got, want) => panic!("delete: got {got:?}, model says {want:?}"),
                }
            }
            Op::Get(i, name) => {
                let Some(i) = pick(&live, i) else { continue };
                let want = model_name(name.text())
                    .map(|n| live[i].model.values(&n))
                    .unwrap_or_default();
                assert_eq!(live[i].real.get(name.text()), want);
            }
            Op::Has(i, name) => {
                let Some(i) = pick(&live, i) else { continue };
                let want =
                    model_name(name.text()).is_some_and(|n| !live[i].model.values(&n).is_empty());
                assert_eq!(live[i].real.has(name.text()), want);
            }
            Op::Clone(i) => {
                let Some(i) = pick(&live, i) else { continue };
                let fits = live[i].model.size() <= room(budget, &live);
                match live[i].real.clone_mutable(&memory) {
                    Ok(real) => {
                        assert!(fits, "clone charged beyond the budget");
                        let model = Model {
                            mutable: true,
                            ..live[i].model.clone()
                        };
                        live.push(Live { real, model });
                    }
                    Err(_) => assert!(!fits, "clone refused within the budget"),
                }
            }
            Op::Freeze(i) => {
                let Some(i) = pick(&live, i) else { continue };
                live[i].real.freeze();
                live[i].model.mutable = false;
            }
            Op::Drop(i) => {
                let Some(i) = pick(&live, i) else { continue };
                live.swap_remove(i);
            }
        }
        for l in &live {
            assert_eq!(l.real.is_mutable(), l.model.mutable);
            // Same entries, grouped by name, each name's values in order.
            let mut got = l.real.entries();
            let mut want = l.model.entries.clone();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, want, "entries differ from the model");
        }
        let sizes: usize = live.iter().map(|l| l.model.size()).sum();
        assert_eq!(
            memory.host_bytes(),
            sizes,
            "host bytes charged != live sizes"
        );
        assert!(memory.host_bytes() <= budget);
    }
    drop(live);
    assert_eq!(
        memory.host_bytes(),
        0,
        "charges left after every map was dropped"
    );
}

fuzz_target!(|input: Input| run(input));
