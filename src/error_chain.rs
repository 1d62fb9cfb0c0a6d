//! One line for an error and its causes, for people to read: "opening the store: ...: ...".

/// The error's message, then each cause the message does not already quote. Like anyhow's
/// `{:#}`, without the repeats: our error types name their cause in their own message and also
/// expose it as their source, and some libraries' messages hide the cause altogether (a pool's
/// "error performing TLS handshake" over "invalid peer certificate: UnknownIssuer").
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
