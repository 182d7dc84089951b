package handlers

import "strings"

// Audience says whom the service answers: everyone but the blocked senders,
// or, when an allow list is set (a private or test number), only those on
// it. It is applied in the webhook, before a message is recorded or queued,
// because it needs no store: a sender who is not served costs nothing, and
// gets nothing, not even a read receipt. The zero Audience serves everyone.
type Audience struct {
	allow, block map[string]bool
}

// NewAudience returns the audience of the allow and block lists, each of
// phone numbers (with or without "+", spaces or dashes) or user ids.
func NewAudience(allow, block []string) Audience {
	return Audience{allow: senderSet(allow), block: senderSet(block)}
}

func senderSet(list []string) map[string]bool {
	if len(list) == 0 {
		return nil
	}
	set := make(map[string]bool, len(list))
	for _, s := range list {
		set[senderKey(s)] = true
	}
	return set
}

// senderKey writes a phone number the way webhooks carry it (digits only);
// a user id such as "US.13491208655302741918" is kept as it is.
var senderKey = strings.NewReplacer("+", "", " ", "", "-", "", "(", "", ")", "").Replace

// Serves reports whether a message is answered, given the ids its sender is
// known by (the phone number and the user id, either may be empty).
func (a Audience) Serves(ids ...string) bool {
	allowed := a.allow == nil
	for _, id := range ids {
		if id == "" {
			continue
		}
		if a.block[id] {
			return false
		}
		allowed = allowed || a.allow[id]
	}
	return allowed
}
