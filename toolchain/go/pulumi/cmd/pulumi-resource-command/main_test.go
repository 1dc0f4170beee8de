package main

import (
	"context"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"sparks/toolchain/pulumi/internal/provutil"
)

func TestRunLocal(t *testing.T) {
	p := &commandProvider{}
	in := provutil.Props{M: resource.NewPropertyMapFromMap(map[string]any{
		"environment": map[string]any{"GREETING": "hi"},
		"stdin":       "from-stdin\n",
		"dir":         "/",
	})}
	out, errOut, err := p.run(context.Background(), tLocalCommand, "", in,
		`echo "$GREETING $PULUMI_COMMAND_STDOUT $(pwd)"; cat; echo oops >&2`,
		resource.PropertyMap{"stdout": resource.NewStringProperty("prev")})
	if err != nil {
		t.Fatal(err)
	}
	if out != "hi prev /\nfrom-stdin" || errOut != "oops" {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
	_, _, err = p.run(context.Background(), tLocalCommand, "", provutil.Props{M: resource.PropertyMap{}},
		"echo partial; exit 3", nil)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "partial") {
		t.Fatalf("want an error with the exit status and the output, got %v", err)
	}
}
