package pulse

import "time"

// Well-known aliases. Any other valid name may be used as an alias too.
const (
	AliasChampion   = "champion"
	AliasChallenger = "challenger"
	// AliasLive names the live model of a followed stream (see internal/online): the newest
	// weights, published every second, not a stored version. It is never stored.
	AliasLive = "live"
)

// Model is a named series of versions with movable aliases.
type Model struct {
	Name          string         `json:"name"`
	CreatedAt     time.Time      `json:"created_at"`
	LatestVersion int            `json:"latest_version"`
	Aliases       map[string]int `json:"aliases"` // alias -> version
}

// ModelVersion is one immutable trained model: its artifact in the blob store and how it came
// to be.
type ModelVersion struct {
	Model     string `json:"model"`
	Version   int    `json:"version"`
	Algorithm string `json:"algorithm"`
	// Features are the inputs the model expects, in the order the artifact uses them.
	Features []Column `json:"features"`
	Target   string   `json:"target"`
	// Threshold is the probability at or above which the predicted label is 1.
	Threshold      float64 `json:"threshold"`
	ArtifactKey    string  `json:"artifact_key"`
	ArtifactSHA256 string  `json:"artifact_sha256"`
	ArtifactBytes  int64   `json:"artifact_bytes"`
	Metrics        Metrics `json:"metrics"`
	Lineage        Lineage `json:"lineage"`
	// Description is the algorithm's human-readable summary: coefficients (also in the
	// original feature units), feature importance, convergence.
	Description map[string]any `json:"description,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	// Aliases that point at this version now; filled in by the store on reads.
	Aliases []string `json:"aliases"`
}

// Metrics are the offline evaluation of a version.
type Metrics struct {
	Holdout *EvalMetrics `json:"holdout,omitempty"`
	CV      *CVMetrics   `json:"cv,omitempty"`
}

// Confusion is a confusion matrix at a decision threshold; the positive class is label 1.
type Confusion struct {
	TP int `json:"tp"`
	FP int `json:"fp"`
	TN int `json:"tn"`
	FN int `json:"fn"`
}

// EvalMetrics are the metrics of one set of scored, labelled rows.
type EvalMetrics struct {
	N         int     `json:"n"`
	Positives int     `json:"positives"`
	Accuracy  float64 `json:"accuracy"`
	ROCAUC    float64 `json:"roc_auc"`
	LogLoss   float64 `json:"log_loss"`
	Brier     float64 `json:"brier"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	// Sensitivity is the true-positive rate (equal to Recall), Specificity the true-negative
	// rate, both at Threshold.
	Sensitivity float64   `json:"sensitivity"`
	Specificity float64   `json:"specificity"`
	Threshold   float64   `json:"threshold"`
	Confusion   Confusion `json:"confusion"`
	// Calibration is the reliability curve: predicted probability in 10 equal-width bins
	// against the observed fraction of positives. Empty bins are left out.
	Calibration []CalibrationBin `json:"calibration,omitempty"`
}

// CalibrationBin is one bin of a reliability curve.
type CalibrationBin struct {
	Lower            float64 `json:"lower"`
	Upper            float64 `json:"upper"`
	Count            int     `json:"count"`
	MeanPredicted    float64 `json:"mean_predicted"`
	FractionPositive float64 `json:"fraction_positive"`
}

// CVMetrics summarise a stratified k-fold cross-validation: the mean of each metric over the
// folds, their standard deviations, and every fold's own metrics.
type CVMetrics struct {
	Folds     int     `json:"folds"`
	Accuracy  float64 `json:"accuracy"`
	ROCAUC    float64 `json:"roc_auc"`
	LogLoss   float64 `json:"log_loss"`
	Brier     float64 `json:"brier"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	// Sensitivity and Specificity are means over the folds, at the decision threshold.
	Sensitivity float64       `json:"sensitivity"`
	Specificity float64       `json:"specificity"`
	SD          CVSpread      `json:"sd"`
	PerFold     []EvalMetrics `json:"per_fold"`
}

// CVSpread holds the standard deviations across folds.
type CVSpread struct {
	Accuracy    float64 `json:"accuracy"`
	ROCAUC      float64 `json:"roc_auc"`
	LogLoss     float64 `json:"log_loss"`
	Brier       float64 `json:"brier"`
	Precision   float64 `json:"precision"`
	Recall      float64 `json:"recall"`
	F1          float64 `json:"f1"`
	Sensitivity float64 `json:"sensitivity"`
	Specificity float64 `json:"specificity"`
}

// Lineage records everything needed to know, and to redo, how a version was made.
type Lineage struct {
	DatasetID     string         `json:"dataset_id"`
	DatasetName   string         `json:"dataset_name"`
	DatasetSHA256 string         `json:"dataset_sha256"`
	Target        string         `json:"target"`
	Algorithm     string         `json:"algorithm"`
	Params        map[string]any `json:"params"`
	Seed          uint64         `json:"seed"`
	Holdout       float64        `json:"holdout"`
	CVFolds       int            `json:"cv_folds"`
	TrainingRows  int            `json:"training_rows"`
	HoldoutRows   int            `json:"holdout_rows"`
	PulseVersion  string         `json:"pulse_version"`
	GitCommit     string         `json:"git_commit"`
	Trigger       string         `json:"trigger"` // api, cli, example, schedule, stream, ...
	TrainedAt     time.Time      `json:"trained_at"`
	DurationMS    float64        `json:"duration_ms"`
	// Search records the hyperparameter search that chose Params, when one ran.
	Search *Search `json:"search,omitempty"`
	// JobID is the job that trained the version, when a job did: a retried job finds the
	// version its earlier attempt registered instead of training another.
	JobID int64 `json:"job_id,omitempty"`
	// IngestSince and IngestedRows say which ingested records (the lake's ingest table of the
	// dataset, received since IngestSince, each event once) were added to the dataset's rows.
	IngestSince  *time.Time `json:"ingest_since,omitempty"`
	IngestedRows int        `json:"ingested_rows,omitempty"`
	// Stream records, for a version snapshotted by an online follower (trigger "stream"), the
	// position in the ingest stream its state includes.
	Stream *StreamLineage `json:"stream,omitempty"`
}

// StreamLineage is where in a stream an online-trained version stands: its learner has learnt
// every labelled record of the followed dataset before Offsets, and none after.
type StreamLineage struct {
	Topic string `json:"topic"`
	// Offsets maps each partition (in decimal) to the next offset to consume.
	Offsets map[string]int64 `json:"offsets"`
	// Records is the number of records learnt since the base version.
	Records int64 `json:"records"`
	// BaseVersion is the batch-trained version the stream started from.
	BaseVersion int         `json:"base_version"`
	Prequential Prequential `json:"prequential"`
}

// Prequential are test-then-train metrics: each record is scored before it is learnt.
type Prequential struct {
	// Accuracy and ROCAUC over the last Window records.
	Accuracy float64 `json:"accuracy"`
	ROCAUC   float64 `json:"roc_auc"`
	Window   int     `json:"window"`
	// CumulativeAccuracy and CumulativeROCAUC over every record learnt (the AUC from scores
	// binned in 1/1024ths).
	CumulativeAccuracy float64 `json:"cumulative_accuracy"`
	CumulativeROCAUC   float64 `json:"cumulative_roc_auc"`
}

// Search is a hyperparameter search by stratified cross-validation inside the training split.
type Search struct {
	Method     string            `json:"method"` // grid or random
	Metric     string            `json:"metric"` // what was maximised, e.g. roc_auc
	Folds      int               `json:"folds"`
	Best       map[string]any    `json:"best"`
	Candidates []SearchCandidate `json:"candidates"`
}

// SearchCandidate is one parameter setting tried by a search, with its cross-validated score.
type SearchCandidate struct {
	Params map[string]any `json:"params"`
	Mean   float64        `json:"mean"`
	SD     float64        `json:"sd"`
}
