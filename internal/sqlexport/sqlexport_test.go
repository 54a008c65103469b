package sqlexport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/mltest"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

const tolerance = 1e-9

// row is one scoring row: a value per model input, and what Predict returns for it.
type row = mltest.Case

// scoringRows returns the Cleveland rows as model values, plus rows with every value
// missing and with categories not seen in training, and Predict's probability of each.
func scoringRows(t testing.TB, m *ml.Model, tab *tabular.Table) []row {
	t.Helper()
	return mltest.Cases(t, m, tab)
}

// cell returns the SQL parameter of value v: NULL when missing; for a category, the text or,
// with numericCategories, the number.
func cell(v ml.Value, kind pulse.Kind, numericCategories bool) (any, error) {
	if !v.Present {
		return nil, nil
	}
	if kind == pulse.Numeric {
		return v.Num, nil
	}
	if numericCategories {
		var f float64
		if _, err := fmt.Sscan(v.Str, &f); err != nil {
			return nil, fmt.Errorf("category %q is not a number", v.Str)
		}
		return f, nil
	}
	return v.Str, nil
}

// compare checks each probability against Predict's.
func compare(t *testing.T, rows []row, got []float64) {
	t.Helper()
	if len(got) != len(rows) {
		t.Fatalf("got %d probabilities, want %d", len(got), len(rows))
	}
	bad := 0
	for i, r := range rows {
		if d := math.Abs(got[i] - r.Want); !(d <= tolerance) {
			if bad++; bad <= 5 {
				t.Errorf("row %d: got %v, want %v (|diff| %g)", i+1, got[i], r.Want, d)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%d rows of %d differ", bad, len(rows))
	}
}

func TestSQLiteMatchesPredict(t *testing.T) {
	tab := mltest.Cleveland(t)
	models := mltest.TrainAll(t, tab)
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "score.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for alg, m := range models {
		rows := scoringRows(t, m, tab)
		for _, numericCats := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/numeric-categories=%v", alg, numericCats), func(t *testing.T) {
				table := fmt.Sprintf("heart_%s_%v", alg, numericCats)
				catType := "TEXT"
				if numericCats {
					catType = "REAL"
				}
				got := scoreIn(t, sqliteDB{db}, SQLite, m, rows, table, catType, numericCats)
				compare(t, rows, got)
			})
		}
	}
}

// database is what the test needs of a database.
type database interface {
	exec(query string, args ...any) error
	probabilities(query string) ([]float64, error)
	placeholder(i int) string
}

type sqliteDB struct{ db *sql.DB }

func (d sqliteDB) exec(q string, args ...any) error { _, err := d.db.Exec(q, args...); return err }
func (d sqliteDB) placeholder(int) string           { return "?" }
func (d sqliteDB) probabilities(q string) ([]float64, error) {
	rs, err := d.db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []float64
	for rs.Next() {
		var p float64
		if err := rs.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rs.Err()
}

type pgDB struct{ conn *pgx.Conn }

func (d pgDB) exec(q string, args ...any) error {
	_, err := d.conn.Exec(context.Background(), q, args...)
	return err
}
func (d pgDB) placeholder(i int) string { return fmt.Sprintf("$%d", i) }
func (d pgDB) probabilities(q string) ([]float64, error) {
	rs, err := d.conn.Query(context.Background(), q)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []float64
	for rs.Next() {
		var p float64
		if err := rs.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rs.Err()
}

// scoreIn loads rows into a new table, creates the model's view over it and returns the
// view's probabilities in row order.
func scoreIn(t *testing.T, db database, d Dialect, m *ml.Model, rows []row, table, catType string, numericCats bool) []float64 {
	t.Helper()
	ins := m.Inputs()
	numType := "REAL"
	if d == Postgres {
		numType = "DOUBLE PRECISION"
		if catType == "REAL" {
			catType = numType
		}
	}
	defs := []string{"row_id INTEGER"}
	names := []string{"row_id"}
	marks := []string{db.placeholder(1)}
	for i, in := range ins {
		typ := numType
		if in.Kind != pulse.Numeric {
			typ = catType
		}
		defs = append(defs, quote(in.Name)+" "+typ)
		names = append(names, quote(in.Name))
		marks = append(marks, db.placeholder(i+2))
	}
	if err := db.exec("CREATE TABLE " + table + " (" + strings.Join(defs, ", ") + ")"); err != nil {
		t.Fatal(err)
	}
	insert := "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	for r, rw := range rows {
		args := []any{r}
		for i, in := range ins {
			c, err := cell(rw.Values[i], in.Kind, numericCats)
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, c)
		}
		if err := db.exec(insert, args...); err != nil {
			t.Fatalf("row %d: %v", r+1, err)
		}
	}
	view, err := View(m, d, table, table+"_scored")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.exec(view); err != nil {
		t.Fatalf("create view: %v\n%.2000s", err, view)
	}
	got, err := db.probabilities("SELECT probability FROM " + table + "_scored ORDER BY row_id")
	if err != nil {
		t.Fatal(err)
	}
	// The label agrees with the threshold.
	labels, err := db.probabilities("SELECT label FROM " + table + "_scored ORDER BY row_id")
	if err != nil {
		t.Fatal(err)
	}
	for i := range labels {
		want := 0.0
		if i < len(got) && got[i] >= m.Threshold() {
			want = 1
		}
		if labels[i] != want {
			t.Errorf("row %d: label %v with probability %v and threshold %v", i+1, labels[i], got[i], m.Threshold())
		}
	}
	return got
}

func TestPostgresMatchesPredict(t *testing.T) {
	tab := mltest.Cleveland(t)
	models := mltest.TrainAll(t, tab)
	conn := newPostgres(t)
	for alg, m := range models {
		rows := scoringRows(t, m, tab)
		for _, numericCats := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/numeric-categories=%v", alg, numericCats), func(t *testing.T) {
				table := fmt.Sprintf("heart_%s_%v", alg, numericCats)
				catType := "TEXT"
				if numericCats {
					catType = "REAL"
				}
				got := scoreIn(t, pgDB{conn}, Postgres, m, rows, table, catType, numericCats)
				compare(t, rows, got)
			})
		}
	}
}

// The tests use the PostgreSQL server at $PULSE_TEST_DATABASE_URL, or else start a private
// throw-away cluster with scripts/postgres (stopped in TestMain).
var pgServer struct {
	once sync.Once
	url  string
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pgServer.dir != "" {
		if out, err := exec.Command(pgScript(), "stop", pgServer.dir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "scripts/postgres stop %s: %v\n%s", pgServer.dir, err, out)
			code = 1
		}
		os.RemoveAll(pgServer.dir)
	}
	os.Exit(code)
}

func pgScript() string { return filepath.Join("..", "..", "scripts", "postgres") }

func startPostgres() (string, error) {
	if u := os.Getenv("PULSE_TEST_DATABASE_URL"); u != "" {
		return u, nil
	}
	dir, err := os.MkdirTemp("", "pulse-pg-")
	if err != nil {
		return "", err
	}
	pgServer.dir = dir
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(pgScript(), "start", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("PULSE_TEST_DATABASE_URL is not set and %s start failed: %v\n%s", pgScript(), err, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "PULSE_TEST_DATABASE_URL="); ok {
			return u, nil
		}
	}
	return "", fmt.Errorf("%s start printed no PULSE_TEST_DATABASE_URL line: %q", pgScript(), stdout.String())
}

// newPostgres connects to a new database, dropped when the test ends.
func newPostgres(t *testing.T) *pgx.Conn {
	t.Helper()
	pgServer.once.Do(func() { pgServer.url, pgServer.err = startPostgres() })
	if pgServer.err != nil {
		t.Fatal(pgServer.err)
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgServer.url)
	if err != nil {
		t.Fatal(err)
	}
	name := "pulse_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(pgServer.url)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	return conn
}

// TestDuckDBFixtures writes, for tests/python/test_sql_duckdb.py, the DuckDB view of each
// model over a table "heart" of the Cleveland rows and Predict's probability of each row (one
// per line, in file order), into $PULSE_SQL_EXPORT_OUT or else a temporary directory.
func TestDuckDBFixtures(t *testing.T) {
	dir := os.Getenv("PULSE_SQL_EXPORT_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	tab := mltest.Cleveland(t)
	for alg, m := range mltest.TrainAll(t, tab) {
		view, err := View(m, DuckDB, "heart", "heart_"+alg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(view, `CREATE VIEW "heart_`+alg+`" AS`) || !strings.Contains(view, "::DOUBLE") {
			t.Errorf("%s: the DuckDB view is not what the Python check expects:\n%.500s", alg, view)
		}
		var b strings.Builder
		for _, r := range scoringRows(t, m, tab)[:tab.Rows] {
			b.WriteString(strconv.FormatFloat(r.Want, 'g', -1, 64) + "\n")
		}
		if err := os.WriteFile(filepath.Join(dir, alg+".duckdb.sql"), []byte(view), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, alg+".probabilities"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
