//! This machine's name, as provenance records it and as TensorBoard's file names carry it.

/// This machine's host name; "localhost" where none can be read.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        // The name goes into file names, where a '/' or NUL would break the path.
        .find(|name| !name.is_empty() && !name.contains(['/', '\0']))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_a_plain_name() {
        let name = hostname();
        assert!(!name.is_empty());
        assert!(!name.contains(char::is_whitespace) && !name.contains('/'));
    }
}
