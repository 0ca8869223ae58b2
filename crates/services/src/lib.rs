//! Plexus built-in services: vnix's set, done right.
//!
//! | service | what |
//! |---|---|
//! | `io.term` | the session's terminal: say, inp, get… |
//! | `io.store` | the persistent unit store |
//! | `dat.proc` | data processing: len, sort, map, fold… |
//! | `dat.gen` | data generators: ranges, random values |
//! | `time.chrono` | waiting, uptime, benchmarks |
//! | `gfx.2d` | 2-D images |
//! | `math.calc` | exact arithmetic on ints and decimals |
//! | `sys.task` | tasks: loops, queues, chains, kill |
//! | `sys.usr` | the user registry |
//! | `sys.hw` | this node's hardware |
//! | `test.dump`, `test.echo`, `test.void` | testing aids |
//!
//! [`register_all`] registers them on a kernel in that order.

pub mod dat_gen;
pub mod dat_proc;
pub mod forms;
pub mod gfx_2d;
pub mod io_store;
pub mod io_term;
pub mod math_calc;
pub mod sys_hw;
pub mod sys_task;
pub mod sys_usr;
pub mod test_svc;
pub mod testing;
pub mod time_chrono;
