package graphapi

// DropNulls exposes the clean-up ParsePayload applies, for the fuzz test that
// compares it with encoding/json.
var DropNulls = (*Payload).dropNulls
