package reconcile

import (
	"testing"
	"time"
)

// TestRefreshDue: tags are re-resolved at every observation with
// RefreshImages, at most every RefreshEvery otherwise, never by default.
func TestRefreshDue(t *testing.T) {
	var never Hosts
	if never.refreshDue() || never.refreshDue() {
		t.Error("a refresh without RefreshImages or RefreshEvery")
	}
	always := Hosts{RefreshImages: true}
	if !always.refreshDue() || !always.refreshDue() {
		t.Error("RefreshImages must refresh at every observation")
	}
	every := Hosts{RefreshEvery: time.Hour}
	if !every.refreshDue() {
		t.Error("the first observation must refresh")
	}
	if every.refreshDue() {
		t.Error("a second refresh within the interval")
	}
	every.lastRefresh = time.Now().Add(-2 * time.Hour)
	if !every.refreshDue() {
		t.Error("no refresh after the interval")
	}
}
