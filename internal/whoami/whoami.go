package whoami

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/authz"
)

// Service is the IdentityService implementation shared by every bank service.
type Service struct {
	identityv1.UnimplementedIdentityServiceServer
}

// New returns the IdentityService implementation.
func New() *Service { return &Service{} }

// WhoAmI returns the caller's identity and roles from the authorization decision in ctx.
func (*Service) WhoAmI(ctx context.Context, _ *identityv1.WhoAmIRequest) (*identityv1.WhoAmIResponse, error) {
	d, ok := authz.FromContext(ctx)
	if !ok {
		// Only reachable if the authorization interceptor is missing: fail closed.
		return nil, status.Error(codes.Unauthenticated, "no usable client identity")
	}
	id := d.Identity
	resp := &identityv1.WhoAmIResponse{
		SpiffeId:          id.ID.String(),
		Roles:             append([]string{}, d.Roles...),
		Subject:           id.SubjectString(),
		Serial:            id.SerialHex,
		NotAfter:          timestamppb.New(id.NotAfter),
		FingerprintSha256: id.FingerprintHex(),
	}
	if d.OnBehalfOf != nil {
		resp.OnBehalfOf = d.OnBehalfOf.ID.String()
	}
	return resp, nil
}
