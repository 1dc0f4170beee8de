package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc64"
	"math/big"
	mrand "math/rand"
	"sort"
	"strings"
	"time"

	petname "github.com/dustinkirkland/golang-petname"
	"golang.org/x/crypto/bcrypt"
)

// Value generation as terraform-provider-random does it (internal/random/*.go and the Create
// methods of internal/provider/resource_*.go).

const (
	numericChars    = "0123456789"
	lowerChars      = "abcdefghijklmnopqrstuvwxyz"
	upperChars      = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	defaultSpecials = "!@#$%&*()-_=+[]{}<>:?"
)

type stringParams struct {
	length                                     int64
	upper, lower, numeric, special             bool
	minUpper, minLower, minNumeric, minSpecial int64
	overrideSpecial                            string
}

// randomString follows random.CreateString. Details that matter for compatibility:
//   - an empty overrideSpecial means the default special characters;
//   - the minimum counts are drawn whatever the class flags say (minSpecial with special=false
//     still puts special characters in the result);
//   - the minimums are keyed by character set, so when overrideSpecial equals another class's
//     set, the special minimum replaces that class's minimum;
//   - the result is ordered by sorting on one random byte per character.
func randomString(p stringParams) (string, error) {
	specials := defaultSpecials
	if p.overrideSpecial != "" {
		specials = p.overrideSpecial
	}
	var pool string
	for _, c := range []struct {
		on  bool
		set string
	}{{p.upper, upperChars}, {p.lower, lowerChars}, {p.numeric, numericChars}, {p.special, specials}} {
		if c.on {
			pool += c.set
		}
	}
	if pool == "" {
		return "", errors.New("the character set specified is empty")
	}
	minimums := map[string]int64{}
	for _, m := range []struct {
		set string
		n   int64
	}{{numericChars, p.minNumeric}, {lowerChars, p.minLower}, {upperChars, p.minUpper}, {specials, p.minSpecial}} {
		minimums[m.set] = m.n
	}
	var out []rune
	for set, n := range minimums {
		chars, err := pickRunes(set, n)
		if err != nil {
			return "", err
		}
		out = append(out, chars...)
	}
	rest, err := pickRunes(pool, p.length-int64(len(out)))
	if err != nil {
		return "", err
	}
	out = append(out, rest...)

	order := make([]byte, len(out))
	if _, err := rand.Read(order); err != nil {
		return "", err
	}
	sort.Slice(out, func(i, j int) bool { return order[i] < order[j] })
	return string(out), nil
}

func pickRunes(set string, n int64) ([]rune, error) {
	if n < 0 {
		return nil, fmt.Errorf("cannot pick %d characters", n)
	}
	runes := []rune(set)
	if len(runes) == 0 && n > 0 {
		return nil, errors.New("charSet is empty")
	}
	out := make([]rune, n)
	for i := range out {
		idx, err := rand.Int(rand.Reader, big.NewInt(int64(len(runes))))
		if err != nil {
			return nil, err
		}
		out[i] = runes[idx.Int64()]
	}
	return out, nil
}

// bcryptHash hashes at most the first 72 bytes, as generateHash in resource_password.go.
func bcryptHash(s string) (string, error) {
	b := []byte(s)
	if len(b) > 72 {
		b = b[:72]
	}
	h, err := bcrypt.GenerateFromPassword(b, bcrypt.DefaultCost)
	return string(h), err
}

// seededRand follows random.NewRand: math/rand seeded with the CRC-64 (ISO table) of the seed,
// or with the current time when there is no seed.
func seededRand(seed string) *mrand.Rand {
	n := time.Now().UnixNano()
	if seed != "" {
		n = int64(crc64.Checksum([]byte(seed), crc64.MakeTable(crc64.ISO)))
	}
	return mrand.New(mrand.NewSource(n))
}

func randomInteger(min, max int64, seed string) int64 {
	return int64(seededRand(seed).Intn(int((max+1)-min))) + min
}

// shuffle follows resource_shuffle.go: whole permutations of the input are concatenated until
// resultCount elements are taken (so a count above the input length repeats elements).
func shuffle(items []string, resultCount int64, seed string) []string {
	out := []string{}
	if resultCount == 0 || len(items) == 0 {
		return out
	}
	r := seededRand(seed)
	for {
		for _, i := range r.Perm(len(items)) {
			out = append(out, items[i])
			if int64(len(out)) >= resultCount {
				return out
			}
		}
	}
}

// hashicorpUUID is hashicorp/go-uuid's GenerateUUID, which random_uuid uses: 16 random bytes in
// lower-case 8-4-4-4-12 hex form, without version or variant bits.
func hashicorpUUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return formatUUID(b), nil
}

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// parseHashicorpUUID is go-uuid's ParseUUID: 36 characters, dashes at 8, 13, 18, 23, hex elsewhere.
func parseHashicorpUUID(s string) ([]byte, error) {
	if len(s) != 36 {
		return nil, errors.New("uuid string is wrong length")
	}
	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, errors.New("uuid is improperly formatted")
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return nil, err
	}
	if len(b) != 16 {
		return nil, errors.New("decoded hex is the wrong length")
	}
	return b, nil
}

// petName follows resource_pet.go: golang-petname words, lower-cased, prefix joined by the separator.
func petName(length int64, prefix, separator string) string {
	pet := strings.ToLower(petname.Generate(int(length), separator))
	if prefix != "" {
		pet = prefix + separator + pet
	}
	return pet
}

// idEncodings are the outputs of random_id for the given bytes.
func idEncodings(b []byte, prefix string) (b64url, b64std, hexs, dec string) {
	return prefix + base64.RawURLEncoding.EncodeToString(b),
		prefix + base64.StdEncoding.EncodeToString(b),
		prefix + hex.EncodeToString(b),
		prefix + new(big.Int).SetBytes(b).String()
}
