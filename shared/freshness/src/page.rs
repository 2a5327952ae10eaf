//! The status page: one HTML document with its style and script inline, so
//! it needs nothing but the API it polls (`GET /v1/status`) and works on a
//! machine without a network. It carries the token it polls with.

use std::time::Duration;

const TEMPLATE: &str = include_str!("page.html");

/// What a server that serves the page should send with it: nothing may load
/// from elsewhere, and the page may only talk to its own origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page, polling `GET /v1/status` with `token` every `refresh`.
pub fn html(token: &str, refresh: Duration) -> String {
    TEMPLATE
        .replace("{{TOKEN}}", &attribute(token))
        .replace("{{REFRESH_MS}}", &refresh.as_millis().to_string())
}

/// `s` safe inside a double-quoted HTML attribute.
fn attribute(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let page = html("t", Duration::from_secs(5));
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "the page refers out: {external}");
        }
        // The only URL in it names the SVG namespace, which is not fetched.
        let urls: Vec<&str> = page
            .match_indices("http")
            .map(|(i, _)| &page[i..i + 26])
            .collect();
        assert_eq!(urls, ["http://www.w3.org/2000/svg"; 1]);
    }

    #[test]
    fn the_token_and_the_refresh_are_filled_in_and_escaped() {
        let page = html("a\"><script>", Duration::from_millis(2500));
        assert!(page.contains(r#"content="a&quot;&gt;&lt;script&gt;""#));
        assert!(page.contains(r#"name="atlas-refresh-ms" content="2500""#));
        assert!(!page.contains("{{"), "a placeholder is left");
    }

    #[test]
    fn each_state_has_its_colour() {
        let page = html("t", Duration::from_secs(5));
        for state in [State::Green, State::Yellow, State::Orange, State::Red] {
            assert!(page.contains(&format!(".{} {{ background:", state.as_str())));
            assert!(page.contains(&format!(".line-{} {{ stroke:", state.as_str())));
        }
    }
}
