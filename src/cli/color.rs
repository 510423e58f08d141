//! Colour for the words people scan for (FAIL, short of space, DIFFERS), honouring `NO_COLOR`
//! and `--color auto|always|never`; plain text in pipes.

use clap::ValueEnum;

use super::ui;

/// `--color WHEN`.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether stdout is a terminal. `always` wins over NO_COLOR
    /// (asked for explicitly); `auto` follows https://no-color.org.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// What a coloured word means.
#[derive(Clone, Copy, Debug)]
pub enum Tone {
    /// FAIL, ERROR, DIFFERS: red.
    Bad,
    /// Short of space, a warning: yellow.
    Warn,
    /// pass, OK: green.
    Good,
}

/// `text` in the tone's colour when stdout is coloured, else as is.
pub fn paint(text: &str, tone: Tone) -> String {
    if ui::color() {
        wrap(text, tone)
    } else {
        text.to_string()
    }
}

fn wrap(text: &str, tone: Tone) -> String {
    let code = match tone {
        Tone::Bad => "1;31",
        Tone::Warn => "33",
        Tone::Good => "32",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        assert!(ColorChoice::Always.enabled(false));
        assert!(!ColorChoice::Never.enabled(true));
        assert!(!ColorChoice::Auto.enabled(false));
        assert_eq!(wrap("FAIL", Tone::Bad), "\x1b[1;31mFAIL\x1b[0m");
    }
}
