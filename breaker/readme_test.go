package breaker_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadmeQuickStart: the README's Quick start is a program whose run and
// chargeCard are Example_quickStart's, character for character, and whose
// imports are the example's (less miniredis, plus log for main). So the
// README's code compiles and does what the example's output shows.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	block := goBlockAfter(t, string(readme), "## Quick start")
	example, err := os.ReadFile("example_quickstart_test.go")
	require.NoError(t, err)

	fset := token.NewFileSet()
	rf, err := parser.ParseFile(fset, "README.md", block, parser.ParseComments)
	require.NoError(t, err, "the Quick start is a Go file")
	ef, err := parser.ParseFile(fset, "example_quickstart_test.go", example, parser.ParseComments)
	require.NoError(t, err)

	assert.Equal(t, "main", rf.Name.Name)
	assert.Equal(t, []string{"main", "run", "chargeCard"}, funcNames(rf))
	want := slices.DeleteFunc(imports(t, ef), func(p string) bool { return strings.Contains(p, "miniredis") })
	want = append(want, "log")
	slices.Sort(want)
	assert.Equal(t, want, imports(t, rf))
	for _, name := range []string{"run", "chargeCard"} {
		assert.Equal(t, funcSource(t, fset, ef, example, name), funcSource(t, fset, rf, []byte(block), name), name)
	}
}

// goBlockAfter returns the first ```go block after the heading.
func goBlockAfter(t *testing.T, doc, heading string) string {
	t.Helper()
	_, rest, found := strings.Cut(doc, "\n"+heading+"\n")
	require.True(t, found, "heading %q", heading)
	_, rest, found = strings.Cut(rest, "```go\n")
	require.True(t, found, "a go block after %q", heading)
	block, _, found := strings.Cut(rest, "\n```\n")
	require.True(t, found, "the block's end")
	return block + "\n"
}

func funcNames(f *ast.File) []string {
	var names []string
	for _, d := range f.Decls {
		if fd, isFunc := d.(*ast.FuncDecl); isFunc {
			names = append(names, fd.Name.Name)
		}
	}
	return names
}

func imports(t *testing.T, f *ast.File) []string {
	t.Helper()
	var paths []string
	for _, is := range f.Imports {
		p, err := strconv.Unquote(is.Path.Value)
		require.NoError(t, err)
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// funcSource returns the text of the function called name, its doc comment
// included.
func funcSource(t *testing.T, fset *token.FileSet, f *ast.File, src []byte, name string) string {
	t.Helper()
	for _, d := range f.Decls {
		fd, isFunc := d.(*ast.FuncDecl)
		if !isFunc || fd.Name.Name != name {
			continue
		}
		start := fd.Pos()
		if fd.Doc != nil {
			start = fd.Doc.Pos()
		}
		return string(src[fset.Position(start).Offset:fset.Position(fd.End()).Offset])
	}
	require.Failf(t, "no such function", "%s", name)
	return ""
}
