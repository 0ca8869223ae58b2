//! The `plx ps` table: process records rendered as aligned text columns. Pure (the caller
//! brings the user names, the live figures and the time), so the CLI and the process service
//! render alike.

use std::fmt;

use crate::procs::{ProcId, ProcRecord, ProcState};

/// What a process's node measures of it now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveFigures {
    /// CPU use, in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
}

const HEADER: [&str; 9] = [
    "ID", "NAME", "USER", "NODE", "STATE", "CPU%", "RSS", "UPTIME", "COMMAND",
];
/// Puts `records` in the order `ps` lists them: by id, except that the copies of an
/// `--everywhere` group are listed together, by node, where the group's id would sort, and
/// the processes of a graph together, by stage, where the graph's id would sort.
pub fn ps_order(records: &mut [ProcRecord]) {
    records.sort_by(|a, b| {
        let key = |r: &ProcRecord| {
            let group = match (&r.everywhere, &r.wiring) {
                (Some(group), _) => group.clone(),
                (None, Some(w)) => w.graph.clone(),
                (None, None) => r.id.to_string(),
            };
            let (node, stage) = match &r.wiring {
                Some(w) => (String::new(), w.stage.clone()),
                None => (r.node.clone(), String::new()),
            };
            (group, node, stage, r.id)
        };
        key(a).cmp(&key(b))
    });
}

/// The long table's columns, before COMMAND.
const LONG_HEADER: [&str; 4] = ["RESTART", "LIMITS", "PLACED", "NOTE"];

/// Rows of `ID NAME USER NODE STATE CPU% RSS UPTIME COMMAND`, printed by [`fmt::Display`]
/// with a header, columns two spaces apart and one process per line. A missing name, live
/// figure or uptime is `-`; a user without a name shows the first 8 hex digits of its key.
/// Environment values are never shown. The long table ([`PsTable::long`]) adds, before
/// COMMAND, the restart policy, the limits the node enforced (`cgroup`, `rlimit` or `none`),
/// what placement asked for (`on=`, `tag=`, `cpu=`, `mem=`) and the record's note (what
/// Plexus last did to the process on its own, cut at [`NOTE_CELL_CHARS`] characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsTable {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl PsTable {
    /// The table of `records`, in the order given. `user_name` names an owner's key,
    /// `live` gives a process's current figures if its node reported them, `now_ms` is the
    /// time uptimes are counted to (ms since the Unix epoch).
    pub fn new<'a>(
        records: impl IntoIterator<Item = &'a ProcRecord>,
        user_name: impl Fn(&[u8; 32]) -> Option<String>,
        live: impl Fn(&ProcId) -> Option<LiveFigures>,
        now_ms: u64,
    ) -> PsTable {
        PsTable::build(records, user_name, live, now_ms, false)
    }

    /// The same table with the long columns (`plx ps --long`).
    pub fn long<'a>(
        records: impl IntoIterator<Item = &'a ProcRecord>,
        user_name: impl Fn(&[u8; 32]) -> Option<String>,
        live: impl Fn(&ProcId) -> Option<LiveFigures>,
        now_ms: u64,
    ) -> PsTable {
        PsTable::build(records, user_name, live, now_ms, true)
    }

    fn build<'a>(
        records: impl IntoIterator<Item = &'a ProcRecord>,
        user_name: impl Fn(&[u8; 32]) -> Option<String>,
        live: impl Fn(&ProcId) -> Option<LiveFigures>,
        now_ms: u64,
        long: bool,
    ) -> PsTable {
        let rows = records
            .into_iter()
            .map(|r| {
                let figures = live(&r.id);
                let mut row = vec![
                    r.id.to_string(),
                    match (&r.name, &r.everywhere, &r.wiring) {
                        (Some(name), _, _) => name.clone(),
                        (None, Some(group), _) => format!("group:{group}"),
                        (None, None, Some(w)) => format!("{}:{}", w.graph_name, w.stage),
                        (None, None, None) => dash(),
                    },
                    user_name(&r.owner).unwrap_or_else(|| hex8(&r.owner)),
                    r.node.clone(),
                    state_cell(r),
                    figures.map_or_else(dash, |f| format!("{:.1}", f.cpu_percent)),
                    figures.map_or_else(dash, |f| bytes_short(f.rss_bytes)),
                    uptime(r, now_ms),
                ];
                if long {
                    row.extend([
                        r.restart.to_string(),
                        r.limits.to_string(),
                        placed(r),
                        note_cell(r),
                    ]);
                }
                row.push(command_line(&r.command));
                row
            })
            .collect();
        let mut header = HEADER[..HEADER.len() - 1].to_vec();
        if long {
            header.extend(LONG_HEADER);
        }
        header.push(HEADER[HEADER.len() - 1]);
        PsTable { header, rows }
    }

    /// How many processes it lists.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn dash() -> String {
    "-".to_owned()
}

fn hex8(key: &[u8; 32]) -> String {
    key.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// How long a running process has run: `4s`, `12m`, `3h`, `2d` (whole units, rounded down).
fn uptime(r: &ProcRecord, now_ms: u64) -> String {
    if r.state != ProcState::Running || r.started_ms == 0 {
        return dash();
    }
    let s = now_ms.saturating_sub(r.started_ms) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// A size as `512B`, `12.1K`, `12.1M`, `1.5G` (powers of 1024).
pub fn bytes_short(n: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// The command as a shell line: arguments with spaces, quotes or nothing in them are quoted.
fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && !"'\"\\$`".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for PsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len() - 1;
            for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
                if i == last {
                    writeln!(f, "{cell}")?;
                } else {
                    write!(f, "{cell:<w$}  ")?;
                }
            }
        }
        Ok(())
    }
}

/// What placement asked for: `on=n2 tag=gpu cpu=1.5 mem=200.0M`, or `-`.
fn placed(r: &ProcRecord) -> String {
    let p = &r.placement;
    let mut parts: Vec<String> = p.on.iter().map(|n| format!("on={n}")).collect();
    parts.extend(p.tags.iter().map(|t| format!("tag={t}")));
    if let Some(millis) = p.cpu_millis {
        parts.push(format!("cpu={}", millis as f64 / 1000.0));
    }
    if let Some(bytes) = p.mem_bytes {
        parts.push(format!("mem={}", bytes_short(bytes)));
    }
    if parts.is_empty() {
        return dash();
    }
    parts.join(" ")
}

/// The state, with the restart count once there was one (a process moved off a dead node
/// counts one): `running (2 restarts)`.
/// The most characters of a note the long table shows; `ps` as a unit has all of it.
pub const NOTE_CELL_CHARS: usize = 60;

fn note_cell(r: &ProcRecord) -> String {
    match &r.note {
        None => dash(),
        Some(note) if note.chars().count() <= NOTE_CELL_CHARS => note.clone(),
        Some(note) => {
            let mut cut: String = note.chars().take(NOTE_CELL_CHARS - 1).collect();
            cut.push('…');
            cut
        }
    }
}

fn state_cell(r: &ProcRecord) -> String {
    match r.restarts {
        0 => r.state.short(),
        1 => format!("{} (1 restart)", r.state.short()),
        n => format!("{} ({n} restarts)", r.state.short()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, state: ProcState, started_ms: u64) -> ProcRecord {
        let mut r = ProcRecord::new(
            ProcId::parse(id).unwrap(),
            [7; 32],
            "n3",
            vec!["./crawler.sh".to_owned()],
        );
        r.ended_ms = state.is_ended().then_some(9_000);
        r.state = state;
        r.started_ms = started_ms;
        r
    }

    #[test]
    fn the_copies_of_a_group_are_listed_together() {
        let copy = |id: &str, node: &str| {
            let mut r = rec(id, ProcState::Running, 1_000);
            r.everywhere = Some("g00000".into());
            r.node = node.into();
            r
        };
        let mut records = vec![
            rec("000001", ProcState::Running, 1_000),
            copy("000002", "n2"),
            rec("h00000", ProcState::Running, 1_000),
            copy("z00000", "n1"),
        ];
        ps_order(&mut records);
        let ids: Vec<_> = records.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, ["000001", "z00000", "000002", "h00000"]);
        let t = PsTable::new(&records, |_| Some("me".into()), |_| None, 5_000);
        let names: Vec<_> = t.rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(names, ["-", "group:g00000", "group:g00000", "-"]);
    }

    #[test]
    fn a_restarted_process_shows_its_restarts() {
        let mut r = rec("k7f2q1", ProcState::Running, 1_000);
        r.restarts = 2;
        let table = PsTable::new([&r], |_| Some("me".into()), |_| None, 5_000).to_string();
        assert!(table.contains("running (2 restarts)"), "{table}");
        r.restarts = 1;
        let table = PsTable::new([&r], |_| Some("me".into()), |_| None, 5_000).to_string();
        assert!(table.contains("running (1 restart)"), "{table}");
    }

    #[test]
    fn renders_the_issue_example() {
        let mut r = rec("k7f2q1", ProcState::Running, 1_000);
        r.name = Some("crawler".to_owned());
        let t = PsTable::new(
            [&r],
            |k| (k == &[7; 32]).then(|| "me".to_owned()),
            |_| {
                Some(LiveFigures {
                    cpu_percent: 2.0,
                    rss_bytes: 12_688_000,
                })
            },
            5_400,
        );
        assert_eq!(
            t.to_string(),
            "ID      NAME     USER  NODE  STATE    CPU%  RSS    UPTIME  COMMAND\n\
             k7f2q1  crawler  me    n3    running  2.0   12.1M  4s      ./crawler.sh\n"
        );
    }

    #[test]
    fn missing_figures_names_and_ended_states_show_dashes() {
        let mut ended = rec("00000a", ProcState::Exited(3), 1_000);
        ended.command = vec!["sh".into(), "-c".into(), "echo 'hi there'".into()];
        let failed = rec("00000b", ProcState::FailedToStart("no such file".into()), 0);
        let t = PsTable::new([&ended, &failed], |_| None, |_| None, 99_000);
        assert_eq!(
            t.to_string(),
            "ID      NAME  USER      NODE  STATE      CPU%  RSS  UPTIME  COMMAND\n\
             00000a  -     07070707  n3    exited(3)  -     -    -       sh -c 'echo '\\''hi there'\\'''\n\
             00000b  -     07070707  n3    failed     -     -    -       ./crawler.sh\n"
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn the_long_table_shows_restart_limits_and_placement() {
        let mut r = rec("k7f2q1", ProcState::Running, 1_000);
        r.restart = crate::RestartPolicy::Always;
        r.limits = crate::procs::Enforced::Cgroup;
        r.placement.on = Some("n3".into());
        r.placement.tags = vec!["site=lab".into()];
        r.placement.cpu_millis = Some(1_500);
        r.placement.mem_bytes = Some(200 << 20);
        r.note = Some("moved from n2 (its node is down)".into());
        let plain = rec("00000a", ProcState::Exited(0), 1_000);
        let t = PsTable::long([&r, &plain], |_| Some("me".into()), |_| None, 5_400);
        assert_eq!(
            t.to_string(),
            "ID      NAME  USER  NODE  STATE      CPU%  RSS  UPTIME  RESTART  LIMITS  PLACED                                 NOTE                              COMMAND\n\
             k7f2q1  -     me    n3    running    -     -    4s      always   cgroup  on=n3 tag=site=lab cpu=1.5 mem=200.0M  moved from n2 (its node is down)  ./crawler.sh\n\
             00000a  -     me    n3    exited(0)  -     -    -       never    none    -                                      -                                 ./crawler.sh\n"
        );
        r.note = Some("x".repeat(100));
        let cell = PsTable::long([&r], |_| None, |_| None, 0).rows[0][11].clone();
        assert_eq!(cell.chars().count(), NOTE_CELL_CHARS);
        assert!(cell.ends_with('…'));
    }

    #[test]
    fn an_empty_table_is_the_header() {
        let t = PsTable::new([], |_| None, |_| None, 0);
        assert!(t.is_empty());
        assert_eq!(
            t.to_string(),
            "ID  NAME  USER  NODE  STATE  CPU%  RSS  UPTIME  COMMAND\n"
        );
    }

    #[test]
    fn uptimes_and_sizes_use_whole_units() {
        let at = |ms: u64| uptime(&rec("00000c", ProcState::Running, 1), ms + 1);
        assert_eq!(at(59_999), "59s");
        assert_eq!(at(60_000), "1m");
        assert_eq!(at(3_600_000), "1h");
        assert_eq!(at(86_400_000 * 3), "3d");
        assert_eq!(bytes_short(1023), "1023B");
        assert_eq!(bytes_short(1536), "1.5K");
        assert_eq!(bytes_short(3 << 30), "3.0G");
    }
}
