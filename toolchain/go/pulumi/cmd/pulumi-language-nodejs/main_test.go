package main

import (
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResourcePackages(t *testing.T) {
	dir := t.TempDir()
	nm := filepath.Join(dir, "node_modules")
	writeFile(t, filepath.Join(nm, "@pulumi", "random", "package.json"),
		`{"name":"@pulumi/random","version":"4.21.2","pulumi":{"resource":true,"name":"random","version":"4.21.2"}}`)
	writeFile(t, filepath.Join(nm, "@pulumi", "pulumi", "package.json"), `{"name":"@pulumi/pulumi","version":"3.270.0"}`)
	// Nested copy of another version, and a package that declares no name.
	writeFile(t, filepath.Join(nm, "x", "node_modules", "@pulumi", "command", "package.json"),
		`{"name":"@pulumi/command","version":"1.2.1","pulumi":{"resource":true}}`)
	writeFile(t, filepath.Join(nm, "x", "package.json"), `{"name":"x","version":"1.0.0"}`)

	deps, err := resourcePackages(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range deps {
		if d.Kind != "resource" {
			t.Fatalf("kind %q", d.Kind)
		}
		got[d.Name] = d.Version
	}
	want := map[string]string{"random": "v4.21.2", "command": "v1.2.1"}
	if len(got) != len(want) || got["random"] != want["random"] || got["command"] != want["command"] {
		t.Fatalf("got %v want %v", got, want)
	}
}
