//! The CLI's standard output. Every command prints through `outln!`: when
//! the reader of a pipe has gone (`opshub start … | head -1`) the command
//! stops quietly, like any Unix tool, where `println!` would panic.

use std::io::{ErrorKind, Write};

/// Writes one line to standard output. A closed pipe ends the process at
/// once with status 0 and nothing on standard error (clap does the same
/// for `--help`); any other write error ends it with status 1 and says so.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "opshub: cannot write to standard output: {e}"
            );
            std::process::exit(1);
        }
    }
}

/// `println!` for the CLI: see `write_line`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::server::output::write_line(format_args!($($arg)*))
    };
}
