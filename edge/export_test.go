package edge

// HoldReadMemory takes the server's whole budget of slice-sized read
// buffers, so that stored ranges go out in pieces, until release is called.
func (s *Server) HoldReadMemory() (release func()) {
	s.readMem.Add(readBudget)
	return func() { s.readMem.Add(-readBudget) }
}

// ReadBudget and PieceSize are the read-buffer sizes of sendStored.
const (
	ReadBudget = readBudget
	PieceSize  = pieceSize
)

// ReadMemoryInUse is the part of the read budget taken now.
func (s *Server) ReadMemoryInUse() int64 { return s.readMem.Load() }
