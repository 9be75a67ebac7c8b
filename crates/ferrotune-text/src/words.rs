use unicode_categories::UnicodeCategories;

/// A word of raw text with its character offsets (not bytes) in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word.
    pub text: String,
    /// Character offset of its first character.
    pub start: usize,
    /// Character offset one past its last character.
    pub end: usize,
}

fn is_punctuation(c: char) -> bool {
    // As BERT's pre-tokenizer: ASCII symbols and Unicode punctuation.
    c.is_ascii_punctuation() || c.is_punctuation()
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Splits raw text into words the way BERT's basic tokenizer does: on
/// whitespace, with each punctuation mark and each CJK character a word of
/// its own.
pub fn split_words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let flush = |current: &mut String, start: usize, end: usize, words: &mut Vec<Word>| {
        if !current.is_empty() {
            words.push(Word { text: std::mem::take(current), start, end });
        }
    };
    for (i, c) in text.chars().enumerate() {
        if c.is_whitespace() || c.is_control() {
            flush(&mut current, start, i, &mut words);
        } else if is_punctuation(c) || is_cjk(c) {
            flush(&mut current, start, i, &mut words);
            words.push(Word { text: c.to_string(), start: i, end: i + 1 });
        } else {
            if current.is_empty() {
                start = i;
            }
            current.push(c);
        }
    }
    let end = text.chars().count();
    flush(&mut current, start, end, &mut words);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_space_and_punctuation_with_char_offsets() {
        let words = split_words("Ataxia–telangiectasia (A-T) é rare.");
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Ataxia", "–", "telangiectasia", "(", "A", "-", "T", ")", "é", "rare", "."]);
        let e = &words[8];
        assert_eq!((e.start, e.end), (28, 29));
        let chars: Vec<char> = "Ataxia–telangiectasia (A-T) é rare.".chars().collect();
        for w in &words {
            assert_eq!(chars[w.start..w.end].iter().collect::<String>(), w.text);
        }
    }

    #[test]
    fn empty_and_blank_text() {
        assert!(split_words("").is_empty());
        assert!(split_words(" \t\n").is_empty());
    }
}
