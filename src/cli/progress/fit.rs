//! Fitting one progress line into a terminal's width: pure text layout, no terminal.
//!
//! A line is a name, a bar and fields in order. When it does not fit, in this order: the
//! bar shrinks (down to a few cells, then goes), fields switch to their short forms and then
//! are dropped, lowest priority first, and the name is cut in the middle (`My Al…m.iso`,
//! which keeps the extension). Invariant: [`fit`] never returns a line wider than the width
//! it is given, measured in terminal cells (a CJK character counts two).

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// One field of a line, e.g. `↓ 2.00 MiB/s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Seg {
    pub text: String,
    /// What to show when space is short, before dropping the field.
    pub short: Option<String>,
    /// Higher stays longer; [`KEEP`] is never dropped (it may still be cut at the end).
    pub prio: u8,
}

/// The priority of a field that is never dropped (percentage, state words).
pub const KEEP: u8 = u8::MAX;

impl Seg {
    pub fn new(prio: u8, text: impl Into<String>) -> Seg {
        Seg {
            text: text.into(),
            short: None,
            prio,
        }
    }

    pub fn or_short(mut self, short: impl Into<String>) -> Seg {
        self.short = Some(short.into());
        self
    }
}

/// The widest bar drawn, brackets included (the old fixed bar was 30 cells).
const BAR_MAX: usize = 32;
/// Narrower than this the bar says nothing a percentage does not: it goes.
const BAR_MIN: usize = 10;
/// A name is cut to no less than this before fields are dropped for it.
const NAME_MIN: usize = 16;
/// Fields of lower priority go before the bar does; higher ones outlive it.
pub const BAR_PRIO: u8 = 5;

/// Width of `s` in terminal cells.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `s` cut to at most `max` cells by replacing its middle with `…`.
pub fn middle_truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let room = max - 1; // the ellipsis takes one cell
    let (head_room, tail_room) = (room - room / 2, room / 2);
    let mut head = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > head_room {
            break;
        }
        used += w;
        head.push(c);
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let w = c.width().unwrap_or(0);
        if used + w > tail_room {
            break;
        }
        used += w;
        tail.push(c);
    }
    head.push('…');
    head.extend(tail.into_iter().rev());
    head
}

/// `[=====>    ]` of `cells` cells (brackets included) for `fraction` in 0..=1.
pub fn bar(fraction: f64, cells: usize) -> String {
    let inner = cells.saturating_sub(2);
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = ((inner as f64) * f).floor() as usize;
    let mut s = String::with_capacity(cells + 2);
    s.push('[');
    for i in 0..inner {
        s.push(if i < filled {
            '='
        } else if i == filled {
            '>'
        } else {
            ' '
        });
    }
    s.push(']');
    s
}

/// The line `name [bar] fields…` fitted to `max` cells. `bar` is the fraction to draw, or
/// `None` for a line without one. The bar counts as a field of priority [`BAR_PRIO`] (at
/// its narrowest) when fields are dropped.
pub fn fit(max: usize, name: &str, bar_fraction: Option<f64>, segs: &[Seg]) -> String {
    // The bar is the last entry: a field of BAR_MIN cells that has no short form.
    let mut all: Vec<Seg> = segs.to_vec();
    let has_bar = bar_fraction.is_some();
    if has_bar {
        all.push(Seg::new(BAR_PRIO, " ".repeat(BAR_MIN)));
    }
    // Per field: whether shown, and whether in its short form.
    let mut shown: Vec<(bool, bool)> = vec![(true, false); all.len()];
    let seg_text = |i: usize, short: bool| -> &str {
        match (&all[i].short, short) {
            (Some(s), true) => s,
            _ => &all[i].text,
        }
    };
    let fields_width = |shown: &[(bool, bool)]| -> usize {
        shown
            .iter()
            .enumerate()
            .filter(|(_, (on, _))| *on)
            .map(|(i, (_, short))| width(seg_text(i, *short)) + 1)
            .sum()
    };
    let name_w = width(name);
    let name_floor = name_w.min(NAME_MIN);
    // Lowest priority first (the later of equals first): shorten each field, and drop it if
    // that is not enough, until the name's floor fits; kept fields are only shortened, last.
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by_key(|&i| (all[i].prio, std::cmp::Reverse(i)));
    let fits = |shown: &[(bool, bool)]| name_floor + fields_width(shown) <= max;
    for kept_pass in [false, true] {
        for &i in &order {
            if fits(&shown) {
                break;
            }
            if (all[i].prio == KEEP) != kept_pass {
                continue;
            }
            if all[i].short.is_some() {
                shown[i].1 = true;
            }
            if !kept_pass && !fits(&shown) {
                shown[i].0 = false;
            }
        }
    }
    let bar_on = has_bar && shown[all.len() - 1].0;
    let fields: Vec<&str> = (0..segs.len())
        .filter(|&i| shown[i].0)
        .map(|i| seg_text(i, shown[i].1))
        .collect();
    let fields_w: usize = fields.iter().map(|f| width(f) + 1).sum();
    let room = max.saturating_sub(fields_w);
    let (name_room, bar_cells) = if bar_on {
        // The name takes what it needs up to two fifths of the line, the bar the rest (up
        // to BAR_MAX), and the name whatever the bar leaves.
        let space = room.saturating_sub(1);
        let cap = (max * 2 / 5).max(NAME_MIN);
        let name_first = name_w.min(cap).min(space.saturating_sub(BAR_MIN));
        let bar = space.saturating_sub(name_first).clamp(0, BAR_MAX);
        (space.saturating_sub(bar), bar)
    } else {
        (room, 0)
    };
    let mut line = middle_truncate(name, name_room);
    if bar_cells >= BAR_MIN {
        line.push(' ');
        line.push_str(&bar(bar_fraction.unwrap_or(0.0), bar_cells));
    }
    for f in fields {
        line.push(' ');
        line.push_str(f);
    }
    // Fields marked KEEP may still not fit a very narrow terminal: cut the end.
    if width(&line) > max {
        line = cut_end(&line, max);
    }
    line
}

/// `s` cut at the end to at most `max` cells, with `…` when cut.
fn cut_end(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_in_the_middle() {
        assert_eq!(middle_truncate("My Album.iso", 12), "My Album.iso");
        assert_eq!(middle_truncate("My Album Name.iso", 11), "My Al…e.iso");
        assert_eq!(middle_truncate("abcdef", 1), "…");
        assert_eq!(middle_truncate("abcdef", 0), "");
        // Two cells per CJK character: never over.
        let cut = middle_truncate("名前名前名前名前名前", 7);
        assert!(width(&cut) <= 7, "{cut}");
    }

    #[test]
    fn bars_have_the_asked_width() {
        assert_eq!(bar(0.0, 7), "[>    ]");
        assert_eq!(bar(0.5, 12), "[=====>    ]");
        assert_eq!(bar(1.0, 7), "[=====]");
        assert_eq!(bar(f64::NAN, 4), "[> ]");
    }

    fn segs() -> Vec<Seg> {
        vec![
            Seg::new(KEEP, "45.1%"),
            Seg::new(5, "23.69 MiB/52.78 MiB").or_short("23.7/52.8M"),
            Seg::new(9, "↓ 2.00 MiB/s"),
            Seg::new(3, "↑ 1.00 KiB/s"),
            Seg::new(7, "peers 3/5"),
            Seg::new(8, "ETA 19s"),
            Seg::new(2, "ratio 0.02"),
            Seg::new(6, "trackers 0/1 (127.0.0.1:1: connection refused)").or_short("trackers 0/1"),
        ]
    }

    #[test]
    fn the_bar_shrinks_first_then_fields_go_lowest_priority_first() {
        let wide = fit(200, "movie.bin", Some(0.45), &segs());
        assert!(wide.contains("[============="), "{wide}");
        assert!(
            wide.contains("connection refused") && wide.contains("ratio"),
            "{wide}"
        );
        let narrow = fit(60, "movie.bin", Some(0.45), &segs());
        assert!(width(&narrow) <= 60, "{narrow}");
        assert!(
            narrow.contains("45.1%") && narrow.contains("↓ 2.00 MiB/s"),
            "{narrow}"
        );
        assert!(!narrow.contains("ratio"), "{narrow}");
    }

    #[test]
    fn no_line_is_wider_than_the_terminal() {
        let names = [
            "x",
            "movie.bin",
            "My Album - The Complete Recordings (Remastered 2024) [FLAC 24-96] disc 1 of 3.iso",
            "名前名前名前名前名前名前名前名前名前名前名前名前名前名前名前名前",
        ];
        for w in [0, 1, 5, 10, 20, 40, 60, 80, 120, 200] {
            for name in names {
                for f in [None, Some(0.0), Some(0.5), Some(1.0)] {
                    let line = fit(w, name, f, &segs());
                    assert!(width(&line) <= w, "{w}: {line:?}");
                }
            }
        }
    }

    #[test]
    fn a_long_name_is_cut_not_wrapped() {
        let name = "My Album - The Complete Recordings (Remastered 2024) [FLAC 24-96].iso";
        let line = fit(80, name, Some(0.2), &segs());
        assert!(width(&line) <= 80, "{line}");
        assert!(line.starts_with("My Album"), "{line}");
        assert!(line.contains("….iso") || line.contains(".iso"), "{line}");
        assert!(line.contains('…'), "{line}");
    }
}
