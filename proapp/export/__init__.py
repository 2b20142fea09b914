"""The export API for the central EDC: API keys, the ordered feed of completed responses, serializers
(JSON, CSV, CDISC ODM 1.3.2, FHIR R4), acknowledgements and pushes."""
