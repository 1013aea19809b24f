"""After approval: the pipeline that hands approved requests to the bridge and records
the outcomes (`pipeline`), the certificate checks (`certificates`) and validation of
signed PDFs with pyHanko and poppler (`validation`)."""
