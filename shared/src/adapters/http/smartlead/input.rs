//! What may go into a request: ids that are numbers, whole e-mail
//! addresses.

use super::ApiError;

/// An id as it may appear in a URL path: digits only, so `../` or `?` in an
/// event or a flag can never reach another API path with the key attached.
pub fn path_id<'a>(what: &str, id: &'a str) -> Result<&'a str, ApiError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ApiError::Invalid(format!("{what} must be a number")))
    }
}

/// A single mailbox `local@domain`: one `@`, a non-empty local part, a
/// domain of dot-separated labels (letters, digits, `-`) with at least one
/// dot, no white space or control characters. (`@gmail.com` is a domain,
/// not an address, and must not reach the block list.)
pub fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[]\\,;:\"".contains(c))
        && domain.contains('.')
        && domain.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_addresses_are_checked_before_they_reach_a_request() {
        assert!(path_id("x", "4711").is_ok());
        for bad in [
            "",
            "../webhook/delete",
            "1/../../x",
            "12?a=b",
            "-1",
            "1 2",
            "１２",
        ] {
            assert!(path_id("x", bad).is_err(), "{bad:?}");
        }
        for good in ["jane@acme.example", "a.b+tag@mail.acme-corp.com", "x@b.co"] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "@gmail.com",
            "gmail.com",
            "a b@c.com",
            "a@b",
            "a@@b.com",
            "a@b..com",
            "a@.b.com",
            "a@b.com ",
            "a@-b.com",
            "a\n@b.com",
            "",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }
}
