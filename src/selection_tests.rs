//! Selection rules on hand-made file lists, and piece priorities on real layouts.

use proptest::prelude::*;

use super::*;

fn paths(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

const SEASON: &[&str] = &[
    "Show/S01E01.mkv",
    "Show/S01E02.mkv",
    "Show/S01E03.mkv",
    "Show/subs/S01E01.srt",
    "Show/cover.jpg",
];

use Priority::{Normal as N, Skip as S};

#[test]
fn indexes_count_from_one_and_ranges_are_inclusive() {
    assert_eq!(parse_indexes("1,3-5").unwrap(), vec![1..=1, 3..=5]);
    assert_eq!(parse_indexes(" 2 , 4 - 4 ").unwrap(), vec![2..=2, 4..=4]);
    for bad in ["", "0", "a", "3-1", "1,,2", "-2", "1-", "1-2-3"] {
        assert!(parse_indexes(bad).is_err(), "{bad:?}");
    }
    let sel = Selector {
        indexes: Some(parse_indexes("1,3-4").unwrap()),
        ..Selector::default()
    };
    assert_eq!(sel.apply(&paths(SEASON)).unwrap(), vec![N, S, N, N, S]);
    let far = Selector {
        indexes: Some(parse_indexes("2-6").unwrap()),
        ..Selector::default()
    };
    assert_eq!(
        far.apply(&paths(SEASON)),
        Err(SelectionError::IndexOutOfRange { index: 6, files: 5 })
    );
}

#[test]
fn only_and_exclude_globs() {
    let only = Selector {
        only: vec!["*.mkv".into()],
        exclude: vec!["*E02*".into()],
        ..Selector::default()
    };
    assert_eq!(only.apply(&paths(SEASON)).unwrap(), vec![N, S, N, S, S]);
    // A pattern with a `/` is matched against the whole path; `**` crosses directories.
    let subs = Selector {
        only: vec!["Show/subs/*".into()],
        ..Selector::default()
    };
    assert_eq!(subs.apply(&paths(SEASON)).unwrap(), vec![S, S, S, N, S]);
    let deep = Selector {
        only: vec!["**/*.srt".into(), "Show/cover.???".into()],
        ..Selector::default()
    };
    assert_eq!(deep.apply(&paths(SEASON)).unwrap(), vec![S, S, S, N, N]);
    // `*` never crosses a `/`.
    let shallow = Selector {
        only: vec!["Show/*.srt".into()],
        ..Selector::default()
    };
    assert!(shallow.apply(&paths(SEASON)).is_err());
    // Non-ASCII names: `?` is one character.
    let utf = Selector {
        only: vec!["caf?.txt".into()],
        ..Selector::default()
    };
    assert_eq!(
        utf.apply(&paths(&["café.txt", "cafe.md"])).unwrap(),
        vec![N, S]
    );
}

#[test]
fn a_selection_of_nothing_names_what_was_asked() {
    let sel = Selector {
        indexes: Some(vec![2..=2]),
        only: vec!["*.iso".into()],
        exclude: vec![],
    };
    let e = sel.apply(&paths(SEASON)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the selection matches no file (--files 2, --only \"*.iso\")"
    );
    let bad = Selector {
        only: vec!["a**b".into()],
        ..Selector::default()
    };
    assert!(matches!(
        bad.apply(&paths(SEASON)),
        Err(SelectionError::BadPattern(_))
    ));
    assert!(Selector::default().is_all());
}

#[test]
fn a_piece_straddling_a_wanted_file_is_wanted() {
    // Pieces of 10 bytes; files of 15, 0, 10, 5: bounds at 15 and 25 fall inside pieces.
    let layout = Layout::new(10, &[15, 0, 10, 5]).unwrap();
    assert_eq!(layout.num_pieces(), 3);
    // Only the third file (bytes 15..25): pieces 1 and 2 (10..20, 20..30).
    let files = [S, S, N, S];
    assert_eq!(piece_priorities(&layout, &files), vec![S, N, N]);
    assert_eq!(wanted_bytes(&layout, &files), 10);
    // High wins over normal in a shared piece; the empty file touches nothing.
    let files = [Priority::High, Priority::High, S, N];
    assert_eq!(
        piece_priorities(&layout, &files),
        vec![Priority::High, Priority::High, N]
    );
    assert_eq!(piece_priorities(&layout, &[S, N, S, S]), vec![S, S, S]);
}

#[test]
fn a_pattern_with_a_slash_may_leave_out_the_torrents_folder() {
    let inner = Selector {
        only: vec!["subs/*.srt".into()],
        ..Selector::default()
    };
    assert_eq!(inner.apply(&paths(SEASON)).unwrap(), vec![S, S, S, N, S]);
    // Only the first component may be left out.
    let deeper = Selector {
        only: vec!["*.srt/x".into(), "S01E01.srt/..".into()],
        ..Selector::default()
    };
    assert!(deeper.apply(&paths(SEASON)).is_err());
}

#[test]
fn first_last_marks_each_wanted_files_end_pieces_high() {
    use Priority::High as H;
    // Pieces of 10 bytes; files of 35 and 25 bytes: pieces 0-3 and 3-5.
    let layout = Layout::new(10, &[35, 25]).unwrap();
    assert_eq!(
        first_last_priorities(&layout, &[N, N]),
        vec![H, N, N, H, N, H]
    );
    assert_eq!(
        first_last_priorities(&layout, &[S, N]),
        vec![S, S, S, H, N, H]
    );
    // A file in one piece: that piece is both its first and its last.
    let small = Layout::new(10, &[5, 0, 30]).unwrap();
    assert_eq!(first_last_priorities(&small, &[N, N, S]), vec![H, S, S, S]);
}

#[test]
fn wanted_counts_files_and_their_bytes() {
    let layout = Layout::new(10, &[15, 0, 10, 5]).unwrap();
    let w = Wanted::of(&layout, &[S, N, N, S]);
    assert_eq!(
        w,
        Wanted {
            files: 2,
            of_files: 4,
            bytes: 10
        }
    );
}

proptest! {
    /// Whatever the files and choices: a piece is skipped exactly when no wanted, non-empty
    /// file has a byte in it, and wanted bytes are the wanted files' lengths.
    #[test]
    fn piece_priorities_follow_the_bytes(
        lens in proptest::collection::vec(0u64..40, 1..8),
        wanted in proptest::collection::vec(any::<bool>(), 8),
        piece_len in 1u32..16,
    ) {
        prop_assume!(lens.iter().sum::<u64>() > 0);
        let layout = Layout::new(piece_len, &lens).unwrap();
        let files: Vec<Priority> = (0..lens.len()).map(|i| if wanted[i] { N } else { S }).collect();
        let pieces = piece_priorities(&layout, &files);
        prop_assert_eq!(pieces.len(), layout.num_pieces() as usize);
        for (p, prio) in pieces.iter().enumerate() {
            let (a, b) = (layout.piece_start(p as u32), layout.piece_start(p as u32) + u64::from(layout.piece_size(p as u32)));
            let touched = (0..lens.len()).any(|f| {
                let (fa, fb) = (layout.file_start(f), layout.file_start(f) + lens[f]);
                files[f] == N && lens[f] > 0 && fa < b && a < fb
            });
            prop_assert_eq!(*prio == N, touched);
        }
        let want: u64 = (0..lens.len()).filter(|f| files[*f] == N).map(|f| lens[f]).sum();
        prop_assert_eq!(wanted_bytes(&layout, &files), want);
    }

    /// Globs never panic, whatever the pattern and path.
    #[test]
    fn globs_never_panic(g in "[a-z*?/]{0,12}", path in "[a-z/.]{0,16}") {
        let _ = glob_path(&g, &path);
    }
}
