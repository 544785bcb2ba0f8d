// "Avatar Bridge" in the Live Link panel's "+ Source" menu.
#pragma once

#include "CoreMinimal.h"
#include "LiveLinkSourceFactory.h"
#include "AvatarBridgeSourceFactory.generated.h"

UCLASS()
class AVATARBRIDGEEDITOR_API UAvatarBridgeSourceFactory : public ULiveLinkSourceFactory
{
	GENERATED_BODY()

public:
	virtual FText GetSourceDisplayName() const override;
	virtual FText GetSourceTooltip() const override;
	virtual EMenuType GetMenuType() const override { return EMenuType::SubPanel; }
	virtual TSharedPtr<SWidget> BuildCreationPanel(FOnLiveLinkSourceCreated OnLiveLinkSourceCreated) const override;
	/** ConnectionString: "ServerAddress=host:port" (also what presets store). */
	virtual TSharedPtr<ILiveLinkSource> CreateSource(const FString& ConnectionString) const override;

	static FString MakeConnectionString(const FString& ServerAddress);
};
