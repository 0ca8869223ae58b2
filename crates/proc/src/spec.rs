//! What to run, and turning it into a checked command line before anything is started.

use std::path::{Path, PathBuf};

use crate::limits::Limits;

/// The most arguments a program may be given (the program and interpreter not counted).
pub const MAX_ARGS: usize = 4096;
/// The most bytes the program, arguments and environment additions may take together.
pub const MAX_ARGV_BYTES: usize = 1024 * 1024;

/// A program to run on this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spec {
    /// A path (absolute, or relative to `cwd`) when it contains `/`, otherwise a name looked up
    /// in this node's `PATH`. A file ending in `.py`, `.js` or `.sh` runs with `python3`, `node`
    /// or `sh`.
    pub program: String,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Environment additions as `KEY=VALUE`; the rest of the node's environment is inherited.
    pub env: Vec<String>,
    /// Working directory; the node's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
}

/// Which part of a [`Spec`] held a NUL byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The program.
    Program,
    /// The argument at this index.
    Arg(usize),
    /// The environment entry at this index.
    Env(usize),
    /// The working directory.
    Cwd,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Program => f.write_str("the program"),
            Field::Arg(i) => write!(f, "argument {i}"),
            Field::Env(i) => write!(f, "environment entry {i}"),
            Field::Cwd => f.write_str("the working directory"),
        }
    }
}

/// Why a [`Spec`] cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The program is empty.
    #[error("no program given")]
    EmptyProgram,
    /// The program name is not in any directory of this node's `PATH`.
    #[error("program {name:?} not found in PATH on this node")]
    NotInPath {
        /// The name looked up.
        name: String,
    },
    /// The program path does not exist on this node.
    #[error("program {} not found on this node", path.display())]
    NotFound {
        /// The path tried.
        path: PathBuf,
    },
    /// The program exists but is not a regular file.
    #[error("program {} on this node is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The program is a file without execute permission (and not a known script type).
    #[error("program {} on this node is not executable", path.display())]
    NotExecutable {
        /// The path.
        path: PathBuf,
    },
    /// A script's interpreter is not in this node's `PATH`.
    #[error("interpreter {interpreter:?} for {} not found in PATH on this node", script.display())]
    NoInterpreter {
        /// The interpreter looked up.
        interpreter: &'static str,
        /// The script it was for.
        script: PathBuf,
    },
    /// A NUL byte, which cannot be passed to a program.
    #[error("{0} contains a NUL byte")]
    Nul(Field),
    /// Too many arguments.
    #[error("{count} arguments, more than the {max} allowed")]
    TooManyArgs {
        /// How many were given.
        count: usize,
        /// [`MAX_ARGS`].
        max: usize,
    },
    /// The command line and environment are too large.
    #[error("arguments and environment take {bytes} bytes, more than the {max} allowed")]
    TooLarge {
        /// How many bytes were given.
        bytes: usize,
        /// [`MAX_ARGV_BYTES`].
        max: usize,
    },
    /// An environment entry is not `KEY=VALUE` with a non-empty key.
    #[error("environment entry {entry:?} is not KEY=VALUE")]
    BadEnv {
        /// The entry.
        entry: String,
    },
    /// The working directory cannot be used.
    #[error("working directory {} on this node: {source}", path.display())]
    BadCwd {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The working directory exists but is not a directory.
    #[error("working directory {} on this node is not a directory", path.display())]
    CwdNotDir {
        /// The path.
        path: PathBuf,
    },
    /// A limit makes no sense (zero, negative or not finite).
    #[error("limit {name} must be a positive number")]
    BadLimit {
        /// `mem`, `cpu` or `pids`.
        name: &'static str,
    },
}

/// A checked spec: what exactly is executed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resolved {
    /// The file executed (the interpreter for scripts).
    pub exe: PathBuf,
    /// Arguments after `exe` (for scripts, the script path comes first).
    pub args: Vec<String>,
    /// Environment additions, split.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

/// The interpreter for a script by its extension, as OneOS does.
pub fn interpreter_for(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "py" => Some("python3"),
        "js" => Some("node"),
        "sh" => Some("sh"),
        _ => None,
    }
}

/// Checks sizes, NULs and env entries: everything that needs no file system.
pub(crate) fn check_shape(spec: &Spec) -> Result<Vec<(String, String)>, SpecError> {
    if spec.program.is_empty() {
        return Err(SpecError::EmptyProgram);
    }
    if spec.program.contains('\0') {
        return Err(SpecError::Nul(Field::Program));
    }
    if let Some(i) = spec.args.iter().position(|a| a.contains('\0')) {
        return Err(SpecError::Nul(Field::Arg(i)));
    }
    if let Some(i) = spec.env.iter().position(|e| e.contains('\0')) {
        return Err(SpecError::Nul(Field::Env(i)));
    }
    if let Some(cwd) = &spec.cwd {
        if cwd.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(SpecError::Nul(Field::Cwd));
        }
    }
    if spec.args.len() > MAX_ARGS {
        return Err(SpecError::TooManyArgs {
            count: spec.args.len(),
            max: MAX_ARGS,
        });
    }
    // Each string is passed with its terminating NUL.
    let bytes = spec.program.len()
        + 1
        + spec
            .args
            .iter()
            .chain(&spec.env)
            .map(|s| s.len() + 1)
            .sum::<usize>();
    if bytes > MAX_ARGV_BYTES {
        return Err(SpecError::TooLarge {
            bytes,
            max: MAX_ARGV_BYTES,
        });
    }
    spec.limits.check()?;
    spec.env
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(SpecError::BadEnv {
                entry: entry.clone(),
            }),
        })
        .collect()
}

/// Looks `name` up in the directories of `path_var`, as a shell would.
fn search_path(name: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
        && rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok()
}

/// Checks `spec` against this node's file system and `PATH`.
pub(crate) fn resolve(spec: &Spec) -> Result<Resolved, SpecError> {
    let env = check_shape(spec)?;
    if let Some(cwd) = &spec.cwd {
        let meta = cwd.metadata().map_err(|source| SpecError::BadCwd {
            path: cwd.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SpecError::CwdNotDir { path: cwd.clone() });
        }
    }
    let path_var = std::env::var_os("PATH");
    let program = if spec.program.contains('/') {
        let path = PathBuf::from(&spec.program);
        match (&spec.cwd, path.is_relative()) {
            (Some(cwd), true) => cwd.join(path),
            _ => path,
        }
    } else {
        search_path(&spec.program, path_var.as_deref()).ok_or_else(|| SpecError::NotInPath {
            name: spec.program.clone(),
        })?
    };
    let meta = match program.metadata() {
        Ok(meta) => meta,
        Err(_) => return Err(SpecError::NotFound { path: program }),
    };
    if !meta.is_file() {
        return Err(SpecError::NotAFile { path: program });
    }
    if let Some(interpreter) = interpreter_for(&program) {
        let exe =
            search_path(interpreter, path_var.as_deref()).ok_or(SpecError::NoInterpreter {
                interpreter,
                script: program.clone(),
            })?;
        let mut args = Vec::with_capacity(spec.args.len() + 1);
        args.push(program.to_string_lossy().into_owned());
        args.extend(spec.args.iter().cloned());
        return Ok(Resolved {
            exe,
            args,
            env,
            cwd: spec.cwd.clone(),
        });
    }
    if !is_executable_file(&program) {
        return Err(SpecError::NotExecutable { path: program });
    }
    Ok(Resolved {
        exe: program,
        args: spec.args.clone(),
        env,
        cwd: spec.cwd.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(program: &str, args: &[&str]) -> Spec {
        Spec {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Spec::default()
        }
    }

    #[test]
    fn interpreters_by_extension() {
        assert_eq!(interpreter_for(Path::new("a/x.py")), Some("python3"));
        assert_eq!(interpreter_for(Path::new("x.js")), Some("node"));
        assert_eq!(interpreter_for(Path::new("/t/x.sh")), Some("sh"));
        assert_eq!(interpreter_for(Path::new("x.rb")), None);
        assert_eq!(interpreter_for(Path::new("py")), None);
    }

    #[test]
    fn bounds_are_inclusive() {
        let args: Vec<String> = vec!["a".into(); MAX_ARGS];
        let ok = Spec {
            program: "p".into(),
            args,
            ..Spec::default()
        };
        assert!(check_shape(&ok).is_ok());
        let mut over = ok.clone();
        over.args.push("a".into());
        assert!(
            matches!(check_shape(&over), Err(SpecError::TooManyArgs { count, .. }) if count == MAX_ARGS + 1)
        );
        let big = spec("p", &[&"x".repeat(MAX_ARGV_BYTES)]);
        assert!(matches!(check_shape(&big), Err(SpecError::TooLarge { .. })));
    }

    #[test]
    fn env_entries_need_a_key() {
        for bad in ["", "=v", "novalue"] {
            let s = Spec {
                program: "p".into(),
                env: vec![bad.into()],
                ..Spec::default()
            };
            assert!(
                matches!(check_shape(&s), Err(SpecError::BadEnv { .. })),
                "{bad:?}"
            );
        }
        let s = Spec {
            program: "p".into(),
            env: vec!["K=a=b".into(), "E=".into()],
            ..Spec::default()
        };
        let env = check_shape(&s).ok();
        assert_eq!(
            env,
            Some(vec![
                ("K".into(), "a=b".into()),
                ("E".into(), String::new())
            ])
        );
    }

    proptest! {
        /// A NUL anywhere is reported at the first field that holds one, never accepted.
        #[test]
        fn nul_is_always_refused(args in proptest::collection::vec("[a-z\u{0}]{0,4}", 0..6)) {
            let s = Spec { program: "p".into(), args: args.clone(), ..Spec::default() };
            let first = args.iter().position(|a| a.contains('\0'));
            match (check_shape(&s), first) {
                (Err(SpecError::Nul(Field::Arg(i))), Some(j)) => prop_assert_eq!(i, j),
                (Ok(_), None) => {}
                (other, first) => prop_assert!(false, "{:?} for first NUL {:?}", other, first),
            }
        }

        /// Sizes under both bounds always pass the shape check; anything over either never does.
        #[test]
        fn size_bound_decides(lens in proptest::collection::vec(0usize..300_000, 0..8)) {
            let args: Vec<String> = lens.iter().map(|n| "x".repeat(*n)).collect();
            let bytes = 2 + lens.iter().map(|n| n + 1).sum::<usize>();
            let s = Spec { program: "p".into(), args, ..Spec::default() };
            prop_assert_eq!(check_shape(&s).is_ok(), bytes <= MAX_ARGV_BYTES);
        }
    }
}
