package docker

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
)

// TestOwnActionsMatchEachEventOnce: the events an action of this process
// sends are its own, each once and for a while; any other event of the
// same container is someone else's.
func TestOwnActionsMatchEachEventOnce(t *testing.T) {
	var o ownActions
	now := time.Now()
	o.expect("id1", stopEvents, now)
	o.expect("web-1", renameEvents, now)

	if !o.mine("id1", "web-1", events.ActionRename, now) {
		t.Error("a rename of the container renamed by name is not its own")
	}
	if o.mine("id1", "web-1", events.ActionRename, now) {
		t.Error("a second rename was taken for the one expected")
	}
	if o.mine("id2", "web-2", events.ActionDie, now) {
		t.Error("another container's die was taken for its own")
	}
	if !o.mine("id1", "web-1~old", events.ActionDie, now) || !o.mine("id1", "web-1~old", events.ActionStop, now) {
		t.Error("the die and stop of a stopped container are not its own")
	}
	if o.mine("id1", "web-1~old", events.ActionStop, now) {
		t.Error("a stop by someone else after the own one was taken for its own")
	}
	if o.mine("id1", "", events.ActionDestroy, now) {
		t.Error("a destroy nobody expected was taken for its own")
	}

	o.expect("id3", updateEvents, now)
	if o.mine("id3", "", events.ActionUpdate, now.Add(ownTTL+time.Second)) {
		t.Error("an event after ownTTL was taken for its own")
	}
	o.expect("id4", removeEvents, now.Add(ownTTL+2*time.Second))
	if _, kept := o.ref["id3"]; kept {
		t.Error("an expectation older than ownTTL was kept")
	}
	if len(o.ref) != 1 {
		t.Errorf("%d expectations kept, want 1 (id4): %v", len(o.ref), o.ref)
	}
}
