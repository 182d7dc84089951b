// Package graphapi speaks Meta's WhatsApp Cloud API: the webhook payloads Meta
// posts to us, their signature, and the Graph API client every reply leaves
// through.
package graphapi
