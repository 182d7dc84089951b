// Package graphapi speaks Meta's WhatsApp Cloud API: the webhook payloads Meta
// posts to us, their signature, and the Graph API client every reply leaves
// through.
//
// # Client
//
// New builds a Client from a Config (base URL, API version, access token);
// every call names the phone number id it acts for, so that a reply leaves
// from the number that received the message. SendText, SendAudio and MarkRead
// post to /{phone_number_id}/messages; UploadMedia and DownloadMedia move
// files. The package graphapitest serves a fake of all of them.
//
// # Errors and retries
//
// Every non-2xx answer becomes an *APIError carrying Meta's code, subcode and
// fbtrace id. Transient failures (rate limits 130429, 131056, 80007 and 4,
// Meta's temporary errors 1 and 2, HTTP 5xx, timeouts and dropped
// connections) are retried within the call, with jittered exponential
// backoff, at most Config.MaxAttempts tries and Config.MaxRetryTime, and never
// past the context's deadline; a pair rate limit (131056) waits at least the
// six seconds Meta allows between two messages to one user. Permanent
// failures, such as the closed 24-hour window (131047) or a rejected token
// (190, also logged at error level), return at once. IsTransient tells a
// caller whether trying again later, say from a queue, can help.
//
// # Duplicates after a timeout
//
// The Cloud API has no idempotency key. When a send times out or loses its
// connection after the request was written, Meta may well have accepted it
// and be delivering the message; the client cannot tell, and retries. So a
// reply is sent at least once, and in rare cases twice (a long text that was
// split repeats only the part that timed out). We prefer that to a user left
// without an answer. A caller that would rather lose a message than repeat it
// must give the call one attempt (Config.MaxAttempts = 1) and not retry it.
package graphapi
