//! Standard output for the commands: a reader that goes away (`rapport alerts | head`) ends
//! the command quietly, as it ends `ls`, instead of the panic `println!` would raise.

use std::io::Write;

/// Prints a line (`outln!`, like `println!`).
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Prints without a new line (`out!`, like `print!`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// Writes to standard output; exits at once when it is closed (status 0: the reader had what
/// it wanted) or cannot be written (status 1, saying why on standard error).
pub fn write(args: std::fmt::Arguments<'_>) {
    if let Err(error) = std::io::stdout().lock().write_fmt(args) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rapport: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}
