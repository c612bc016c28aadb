package kit_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/outboxpay/outboxpay/"

// TestProductDoesNotImportKit fails when a package of the product (anything
// outside cmd/ and internal/kit/) imports the kit outside its tests.
func TestProductDoesNotImportKit(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.Bytes())
	}
	products := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(fields[0], module)
		if strings.HasPrefix(pkg, "cmd/") || isKit(pkg) {
			continue
		}
		products++
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module) && isKit(strings.TrimPrefix(imp, module)) {
				t.Errorf("%s imports %s: the product must not import the kit", pkg, strings.TrimPrefix(imp, module))
			}
		}
	}
	if products < 10 {
		t.Fatalf("go list named %d product packages; the check read nothing useful:\n%s", products, out)
	}
}

func isKit(pkg string) bool { return pkg == "internal/kit" || strings.HasPrefix(pkg, "internal/kit/") }
