module github.com/tripline/tripline/bench

go 1.26.0

require (
	github.com/sony/gobreaker/v2 v2.4.0
	github.com/tripline/tripline v0.0.0-00010101000000-000000000000
)

replace github.com/tripline/tripline => ../
