package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func requiredPackages(t *testing.T, dir string) []string {
	t.Helper()
	resp, err := newLanguageHost("", "").GetRequiredPackages(context.Background(),
		&pulumirpc.GetRequiredPackagesRequest{Info: &pulumirpc.ProgramInfo{ProgramDirectory: dir}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range resp.GetPackages() {
		if p.GetKind() != "resource" {
			t.Fatalf("kind %q", p.GetKind())
		}
		got = append(got, p.GetName()+"@"+p.GetVersion()+p.GetServer())
	}
	sort.Strings(got)
	return got
}

// Mirrors getPackagesFromDir / getPackageInfo of upstream main.go: the whole program tree is
// searched (nested node_modules too, parent directories not), pulumi.name/version override the
// package's own, third-party packages without pulumi.name and unreadable package.json files are
// skipped without failing, policy packs are not entered, symlink loops end, every copy is listed.
func TestGetRequiredPackagesWalksProgramTreeAsUpstream(t *testing.T) {
	root := t.TempDir()
	// A node_modules above the program directory is not searched.
	writeFile(t, filepath.Join(root, "node_modules", "@pulumi", "aws", "package.json"),
		`{"name":"@pulumi/aws","version":"6.0.0","pulumi":{"resource":true}}`)
	dir := filepath.Join(root, "program")
	nm := filepath.Join(dir, "node_modules")
	writeFile(t, filepath.Join(nm, "@pulumi", "random", "package.json"),
		`{"name":"@pulumi/random","version":"4.21.2","pulumi":{"resource":true,"name":"random","version":"4.21.2"}}`)
	writeFile(t, filepath.Join(nm, "@pulumi", "pulumi", "package.json"), `{"name":"@pulumi/pulumi","version":"3.270.0"}`)
	writeFile(t, filepath.Join(nm, "x", "package.json"), `{"name":"x","version":"1.0.0"}`)
	writeFile(t, filepath.Join(nm, "x", "node_modules", "@pulumi", "command", "package.json"),
		`{"name":"@pulumi/command","version":"1.2.1","pulumi":{"resource":true}}`)
	writeFile(t, filepath.Join(nm, "y", "node_modules", "@pulumi", "command", "package.json"),
		`{"name":"@pulumi/command","version":"1.2.1","pulumi":{"resource":true}}`)
	writeFile(t, filepath.Join(nm, "third", "package.json"),
		`{"name":"@acme/thing","version":"2.0.0","pulumi":{"resource":true}}`)
	writeFile(t, filepath.Join(nm, "named", "package.json"),
		`{"name":"@acme/named","version":"v0.3.0","pulumi":{"resource":true,"name":"acme","server":"https://example.invalid"}}`)
	writeFile(t, filepath.Join(nm, "broken", "package.json"), `{not json`)
	// Outside node_modules a package.json is the program's own, not an installed package.
	writeFile(t, filepath.Join(dir, "package.json"), `{"name":"@pulumi/self","version":"1.0.0","pulumi":{"resource":true}}`)
	// Packages inside a policy pack belong to the pack.
	writeFile(t, filepath.Join(dir, "policy", "PulumiPolicy.yaml"), "runtime: nodejs\n")
	writeFile(t, filepath.Join(dir, "policy", "node_modules", "@pulumi", "gcp", "package.json"),
		`{"name":"@pulumi/gcp","version":"8.0.0","pulumi":{"resource":true}}`)
	if err := os.Symlink(nm, filepath.Join(nm, "loop")); err != nil {
		t.Fatal(err)
	}

	got := requiredPackages(t, dir)
	want := []string{"acme@v0.3.0https://example.invalid", "command@v1.2.1", "command@v1.2.1", "random@v4.21.2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// Upstream answers Unimplemented; the engine then relies on GetRequiredPackages.
func TestGetRequiredPluginsIsUnimplementedAsUpstream(t *testing.T) {
	_, err := newLanguageHost("", "").GetRequiredPlugins(context.Background(), &pulumirpc.GetRequiredPluginsRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("got %v", err)
	}
}

// Mirrors compatibleVersions of upstream main.go.
func TestSDKIncompatibility(t *testing.T) {
	cases := []struct {
		a, b string
		ok   bool
	}{
		{"3.270.0", "3.100.0", true},
		{"3.270.0", "2.0.0", false},
		{"1.5.0", "2.1.0", true},
		{"0.17.3", "1.0.0", true},
		{"0.16.0", "0.17.0", false},
		{"0.16.0", "1.0.0", false},
	}
	for _, c := range cases {
		got := sdkIncompatibility(mustSemver(t, c.a), mustSemver(t, c.b)) == ""
		if got != c.ok {
			t.Errorf("%s vs %s: compatible=%v, want %v", c.a, c.b, got, c.ok)
		}
	}
}
