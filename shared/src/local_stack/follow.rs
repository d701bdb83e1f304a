//! Following log files as they grow (`smartlead tail --local`, the local
//! stack's console).

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Log files followed from their start: each call to [`Follow::lines`]
/// gives the whole lines written since the last one.
pub struct Follow {
    files: Vec<PathBuf>,
    offsets: Vec<u64>,
    /// Bytes after the last newline, kept until their line is whole (so a
    /// UTF-8 character split across two reads is decoded whole).
    partial: Vec<Vec<u8>>,
}

impl Follow {
    pub fn new(files: Vec<PathBuf>) -> Follow {
        Follow {
            offsets: vec![0; files.len()],
            partial: vec![Vec::new(); files.len()],
            files,
        }
    }

    /// The lines (with their `\n`) each file got since the last call, by
    /// the file's index; a file not there yet is skipped, a truncated one
    /// (its process restarted) is read again from its start.
    pub fn lines(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, path) in self.files.iter().enumerate() {
            let Ok(mut file) = std::fs::File::open(path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < self.offsets[i] {
                // Truncated (its process restarted): what was left of the
                // old last line belongs to no new line.
                self.offsets[i] = 0;
                self.partial[i].clear();
            }
            if len == self.offsets[i] || file.seek(SeekFrom::Start(self.offsets[i])).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if file.read_to_end(&mut buf).is_err() {
                continue;
            }
            self.offsets[i] += buf.len() as u64;
            self.partial[i].extend_from_slice(&buf);
            while let Some(nl) = self.partial[i].iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial[i].drain(..=nl).collect();
                out.push((i, String::from_utf8_lossy(&line).into_owned()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_as_they_are_written_and_again_after_a_truncation() {
        let dir = std::env::temp_dir().join(format!("follow-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.log"), dir.join("b.log"));
        std::fs::write(&a, "one\ntw").unwrap();
        let mut f = Follow::new(vec![a.clone(), b.clone()]);
        assert_eq!(f.lines(), vec![(0, "one\n".to_owned())]);
        std::fs::write(&a, "one\ntwo\n").unwrap();
        std::fs::write(&b, "b1\n").unwrap();
        assert_eq!(
            f.lines(),
            vec![(0, "two\n".to_owned()), (1, "b1\n".to_owned())]
        );
        assert!(f.lines().is_empty());
        std::fs::write(&b, "\n").unwrap();
        assert_eq!(f.lines(), vec![(1, "\n".to_owned())]);
        // A truncation drops the unfinished line it cut off.
        std::fs::write(&b, "\nhalf").unwrap();
        assert!(f.lines().is_empty());
        std::fs::write(&b, "new\n").unwrap();
        assert_eq!(f.lines(), vec![(1, "new\n".to_owned())]);
        // A character split across two reads arrives whole.
        std::fs::write(&a, &"one\ntwo\n\u{e9}".as_bytes()[..9]).unwrap();
        assert!(f.lines().is_empty());
        std::fs::write(&a, "one\ntwo\n\u{e9}\n").unwrap();
        assert_eq!(f.lines(), vec![(0, "\u{e9}\n".to_owned())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
