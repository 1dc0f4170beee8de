package main

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"sparks/toolchain/pulumi/internal/provutil"
)

func props(m map[string]any) provutil.Props {
	return provutil.Props{M: resource.NewPropertyMapFromMap(m)}
}

func count(s, set string) int {
	n := 0
	for _, c := range s {
		if strings.ContainsRune(set, c) {
			n++
		}
	}
	return n
}

func TestGenerateStringClasses(t *testing.T) {
	for i := 0; i < 200; i++ {
		s, err := generateString(props(map[string]any{
			"length": 12, "special": false, "upper": false, "minNumeric": 5, "minLower": 2,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 12 {
			t.Fatalf("length %d: %q", len(s), s)
		}
		if count(s, "0123456789") < 5 || count(s, "abcdefghijklmnopqrstuvwxyz") < 2 {
			t.Fatalf("minimums not met: %q", s)
		}
		if count(s, "0123456789abcdefghijklmnopqrstuvwxyz") != 12 {
			t.Fatalf("disabled class used: %q", s)
		}
	}
}

func TestGenerateStringOverrideSpecial(t *testing.T) {
	s, err := generateString(props(map[string]any{
		"length": 30, "upper": false, "lower": false, "numeric": false, "overrideSpecial": "#",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s != strings.Repeat("#", 30) {
		t.Fatalf("got %q", s)
	}
	if _, err := generateString(props(map[string]any{
		"length": 3, "upper": false, "lower": false, "numeric": false, "special": false,
	})); err == nil {
		t.Fatal("expected an error with every class disabled")
	}
}
