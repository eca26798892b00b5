package media

// MaxEarlyCandidates bounds the candidates a CandidateQueue keeps.
const MaxEarlyCandidates = 64

// CandidateQueue keeps the ICE candidates that arrive before the offer they
// belong to has been answered, up to MaxEarlyCandidates, until they can be
// applied. The zero value is empty and ready. It has no lock of its own: its
// owner's lock guards it.
type CandidateQueue struct {
	early []Candidate
}

// Push keeps c; false if the queue is full and c was not kept.
func (q *CandidateQueue) Push(c Candidate) bool {
	if len(q.early) >= MaxEarlyCandidates {
		return false
	}
	q.early = append(q.early, c)
	return true
}

// Take returns the candidates kept, oldest first, and empties the queue.
func (q *CandidateQueue) Take() []Candidate {
	early := q.early
	q.early = nil
	return early
}
