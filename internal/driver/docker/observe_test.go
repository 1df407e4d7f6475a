package docker

import "testing"

func TestListHealth(t *testing.T) {
	for status, want := range map[string]string{
		"Up 5 minutes (healthy)":          "healthy",
		"Up 3 seconds (health: starting)": "starting",
		"Up About a minute (unhealthy)":   "unhealthy",
		"Up 2 hours":                      "",
		"Exited (0) 5 seconds ago":        "",
		"Up 1 second (Paused)":            "",
		"Restarting (1) 2 seconds ago":    "",
	} {
		if got := listHealth(status); got != want {
			t.Errorf("listHealth(%q) = %q, want %q", status, got, want)
		}
	}
}
