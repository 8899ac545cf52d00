//! `${name}` placeholders in template strings, and `$${…}`, which writes a literal `${…}` (the
//! shell's own `${VAR:-default}` in a container's command).

/// `text` with each `${name}` replaced by `fill(name)`; `$${` becomes `${`. The first name
/// `fill` does not know is the error.
pub(super) fn expand<'a>(
    text: &str,
    mut fill: impl FnMut(&str) -> Option<&'a str>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(after) = at.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = at.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                out.push_str(at);
                return Ok(out);
            };
            let name = &after[..end];
            out.push_str(fill(name).ok_or_else(|| name.to_owned())?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &at[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn placeholders_fill_and_doubled_dollars_escape() {
        let fill = |n: &str| (n == "env").then_some("dev");
        assert_eq!(expand("a-${env}-b", fill).unwrap(), "a-dev-b");
        assert_eq!(expand("$${X:-2} ${env}", fill).unwrap(), "${X:-2} dev");
        assert_eq!(expand("$$ $HOME $", fill).unwrap(), "$$ $HOME $");
        assert_eq!(expand("${nope}", fill).unwrap_err(), "nope");
        assert_eq!(expand("${unclosed", fill).unwrap(), "${unclosed");
    }
}
