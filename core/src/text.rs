//! Small text helpers for untrusted input.

/// The longest prefix of `s` that fits in `max_bytes` and ends on a character boundary (slicing at
/// a fixed byte offset would panic inside a multi-byte character).
pub fn clip(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clips_on_character_boundaries() {
        assert_eq!(clip("abc", 10), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        // "x" then two-byte characters: byte 4 falls inside the second "é".
        assert_eq!(clip("xééé", 4), "xé");
        assert_eq!(clip("€", 2), "");
        assert_eq!(clip("", 0), "");
    }
}
