package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// installStream collects what InstallDependencies streams to the engine.
type installStream struct {
	grpc.ServerStream
	stdout, stderr strings.Builder
}

func (s *installStream) Send(r *pulumirpc.InstallDependenciesResponse) error {
	s.stdout.Write(r.GetStdout())
	s.stderr.Write(r.GetStderr())
	return nil
}

func (s *installStream) Context() context.Context { return context.Background() }

func programInfo(t *testing.T, dir string, options map[string]any) *pulumirpc.ProgramInfo {
	t.Helper()
	opts, err := structpb.NewStruct(options)
	if err != nil {
		t.Fatal(err)
	}
	return &pulumirpc.ProgramInfo{ProgramDirectory: dir, RootDirectory: dir, EntryPoint: ".", Options: opts}
}

// fakePackageManagers puts npm, yarn, pnpm and bun scripts first on PATH that append
// "<name> <args>" to calls.log and create node_modules (which the SDK checks after installing).
func fakePackageManagers(t *testing.T) (log string) {
	t.Helper()
	bin := t.TempDir()
	log = filepath.Join(bin, "calls.log")
	for _, pm := range []string{"npm", "yarn", "pnpm", "bun"} {
		writeScript(t, bin, pm, `echo "`+pm+` $*" >> `+log+`
echo "output of `+pm+`"
mkdir -p node_modules
`)
	}
	pathWithFakes(t, bin)
	return log
}

// Mirrors InstallDependencies of upstream main.go with the SDK's nodejs/npm package: each
// `packagemanager` value runs that package manager with upstream's command line (npm install
// --loglevel=error, yarn install, pnpm install --use-stderr, bun install; --production when the
// `production` option is set), output is streamed between upstream's two banner lines.
func TestInstallDependenciesUsesConfiguredPackageManager(t *testing.T) {
	cases := []struct {
		options map[string]any
		want    string
	}{
		{map[string]any{}, "npm install --loglevel=error"},
		{map[string]any{"packagemanager": "auto"}, "npm install --loglevel=error"},
		{map[string]any{"packagemanager": "npm", "production": true}, "npm install --loglevel=error --production"},
		{map[string]any{"packagemanager": "yarn"}, "yarn install"},
		{map[string]any{"packagemanager": "yarn", "production": true}, "yarn install --production"},
		{map[string]any{"packagemanager": "pnpm"}, "pnpm install --use-stderr"},
		{map[string]any{"packagemanager": "pnpm", "production": true}, "pnpm install --use-stderr --production"},
		{map[string]any{"packagemanager": "bun"}, "bun install"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			log := fakePackageManagers(t)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "package.json"), `{"name":"p","version":"1.0.0"}`)
			stream := &installStream{}
			err := newLanguageHost("", "").InstallDependencies(
				&pulumirpc.InstallDependenciesRequest{Info: programInfo(t, dir, c.options)}, stream)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(readFile(t, log)); got != c.want {
				t.Fatalf("ran %q, want %q", got, c.want)
			}
			pm := strings.Fields(c.want)[0]
			wantOut := "Installing dependencies...\n\n" + "output of " + pm + "\n" + "Finished installing dependencies\n\n"
			if stream.stdout.String() != wantOut {
				t.Fatalf("streamed %q, want %q", stream.stdout.String(), wantOut)
			}
		})
	}
}

// Upstream's `auto` picks the package manager from the lock file next to package.json.
func TestInstallDependenciesAutoFollowsLockFile(t *testing.T) {
	for lock, want := range map[string]string{"yarn.lock": "yarn install", "pnpm-lock.yaml": "pnpm install --use-stderr"} {
		log := fakePackageManagers(t)
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "package.json"), `{"name":"p","version":"1.0.0"}`)
		writeFile(t, filepath.Join(dir, lock), "")
		err := newLanguageHost("", "").InstallDependencies(
			&pulumirpc.InstallDependenciesRequest{Info: programInfo(t, dir, nil)}, &installStream{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(readFile(t, log)); got != want {
			t.Fatalf("%s: ran %q, want %q", lock, got, want)
		}
	}
}

// Upstream parseOptions: an unknown package manager is an error, and nothing is run.
func TestInstallDependenciesRejectsUnknownPackageManager(t *testing.T) {
	log := fakePackageManagers(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"name":"p","version":"1.0.0"}`)
	err := newLanguageHost("", "").InstallDependencies(&pulumirpc.InstallDependenciesRequest{
		Info: programInfo(t, dir, map[string]any{"packagemanager": "deno"}),
	}, &installStream{})
	want := `failed to parse options: packagemanager option must be one of auto, npm, yarn, pnpm or bun, got "deno"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if _, statErr := os.Stat(log); statErr == nil {
		t.Fatal("a package manager ran")
	}
}

// Upstream About: executable and version of node (with its "v"), and the package manager.
func TestAboutReportsNodeAndPackageManager(t *testing.T) {
	bin := t.TempDir()
	writeScript(t, bin, "node", `case "$1" in --version) echo v22.1.0;; *) exit 1;; esac`+"\n")
	writeScript(t, bin, "yarn", "echo 1.22.19\n")
	pathWithFakes(t, bin)
	dir := t.TempDir()
	resp, err := newLanguageHost("", "").About(context.Background(), &pulumirpc.AboutRequest{
		Info: programInfo(t, dir, map[string]any{"packagemanager": "yarn"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	md := resp.GetMetadata()
	if resp.GetExecutable() != filepath.Join(bin, "node") || resp.GetVersion() != "v22.1.0" ||
		md["packagemanager"] != "yarn" || md["packagemanagerVersion"] != "1.22.19" || len(md) != 2 {
		t.Fatalf("got %v", resp)
	}
}

// Upstream RuntimeOptionsPrompts: a package manager prompt (default npm) unless one is set.
func TestRuntimeOptionsPromptsForPackageManager(t *testing.T) {
	h := newLanguageHost("", "")
	resp, err := h.RuntimeOptionsPrompts(context.Background(),
		&pulumirpc.RuntimeOptionsRequest{Info: programInfo(t, t.TempDir(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetPrompts()) != 1 || resp.GetPrompts()[0].GetKey() != "packagemanager" ||
		resp.GetPrompts()[0].GetDefault().GetStringValue() != "npm" || len(resp.GetPrompts()[0].GetChoices()) != 4 {
		t.Fatalf("got %v", resp)
	}
	resp, err = h.RuntimeOptionsPrompts(context.Background(), &pulumirpc.RuntimeOptionsRequest{
		Info: programInfo(t, t.TempDir(), map[string]any{"packagemanager": "pnpm"}),
	})
	if err != nil || len(resp.GetPrompts()) != 0 {
		t.Fatalf("got %v, %v", resp, err)
	}
}
